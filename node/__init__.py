"""The peer: host façade, protocols (one folder each), the ``Node`` API and its commands."""
