"""DKIM signing (RFC 6376, RFC 8463): relay signs each message once, before it is spooled.

`canon.py` (canonicalization) and `headers.py` (the header section, the `h=` list) are pure;
`signature.py` assembles a DKIM-Signature field around a key operation; `keys.py` loads PEM
keys and says what to publish in DNS; `settings.py` holds what the configuration says (plain
frozen data, built by relay.wiring.dkim); `signer.py` signs one message with those settings;
`pool.py` runs it off the event loop (OpenSSL releases the GIL during the key operation).
"""
