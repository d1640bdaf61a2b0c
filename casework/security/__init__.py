"""Shared protection mechanisms: response headers now; field encryption, blind indexes and keys next."""
