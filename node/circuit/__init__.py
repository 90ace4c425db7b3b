"""Circuit relay v2 (``/libp2p/circuit/relay/0.2.0/{hop,stop}``), both roles.

One folder for the protocol: ``wire`` (schema and codec), ``limits`` (the
hop service's pure reservation/circuit policy), ``voucher`` (signed
reservation vouchers), ``pump`` (splicing two streams under a limit), ``hop``
(the relay service), ``client`` (reservations, incoming circuits, dialing via
relays). The relay node program (``relay/``) composes the hop service with
others; nothing here imports it.
"""
