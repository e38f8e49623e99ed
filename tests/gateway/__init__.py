"""The HTTP gateway as a client sees it: a real server process driven over raw sockets."""
