"""The transformers code an exported run ships beside its weights (loaded with trust_remote_code=True).

These two files are copied verbatim into every export of an architecture that transformers has no
class for (the seed's: learned positions, gainless RMSNorm, ReLU, no final norm). They import
torch and transformers, so nothing in microgpt imports them; they are package data that is also a
package, so a plain `pip install` ships them.
"""
