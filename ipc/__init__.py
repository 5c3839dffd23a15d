"""Aura's control plane: msgpack envelopes over ZeroMQ, and sequenced events backed by a journal."""
