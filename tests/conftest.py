"""Suite-wide settings. Tests never touch the internet: every p2pshare process
a test starts (they inherit this environment) stays off the public DHT."""

import os

os.environ["P2PSHARE_NO_DEFAULT_BOOTSTRAP"] = "1"
