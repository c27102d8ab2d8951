"""Wi-Fi as the APs and controllers report it (collector.py), the `wifi` section (config.py), and the
recordings written from the controllers' MIBs that prove their profiles (testdata/)."""
