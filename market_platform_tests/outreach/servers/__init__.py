"""Local stand-ins for the outside servers, each run as its own process on 127.0.0.1."""
