"""Generated corvid.v1 messages and gRPC stubs, copied from gen/python by
client/python/sync_stubs.py (`make generate`). DO NOT EDIT."""
