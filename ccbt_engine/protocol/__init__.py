"""Sans-I/O protocol cores: bytes in, events out; commands in, bytes out. No sockets, no clock."""
