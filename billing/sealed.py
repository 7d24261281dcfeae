"""Small secrets sealed at rest (two-factor TOTP secrets): AES-256-GCM under a key derived from SECRET_KEY.

A sealed value is text: ``v1:`` then base64url (no padding) of a fresh 12-byte nonce and the ciphertext
with its 16-byte tag. The key is HKDF-SHA256 of the app's SECRET_KEY with a fixed salt and the purpose as
``info``, so each purpose has its own key and SECRET_KEY itself never touches the data. The row a value
belongs to is bound in as associated data, so a sealed value copied into another login's row does not open.

Rotation: ``configure(SECRET_KEY, SECRET_KEY_FALLBACKS)``. Sealing always uses the current key; opening
tries the current key, then each fallback, and says whether the current key opened it, so callers re-seal
values still under an old key (billing.twofactor does on the next right code, and ``reseal_all``). The
``v1:`` prefix names this format and derivation, so a later one can be read beside it.

Written on the ``cryptography`` package's AESGCM and HKDF rather than itsdangerous: itsdangerous signs but
does not encrypt, and a TOTP secret must not be readable from a copy of the database.
"""
import base64
import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1:"
_SALT = b"customer-portal sealed v1"
_NONCE = 12
_keys = ()  # SECRET_KEY first, then its fallbacks


class SealError(Exception):
    """A value that no configured key opens (a wrong or retired SECRET_KEY, or a damaged value)."""


def configure(secret_key, fallbacks=()):
    """Use ``secret_key`` to seal, and it then each of ``fallbacks`` to open."""
    global _keys
    keys = [secret_key, *(fallbacks or ())]
    _keys = tuple(k.encode() if isinstance(k, str) else bytes(k) for k in keys if k)


@functools.lru_cache(maxsize=32)
def _derive(secret_key, purpose):
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose.encode()).derive(secret_key))


def is_sealed(value):
    """Whether a stored value is in a sealed format (rather than a legacy plain value)."""
    return bool(value) and value.startswith(PREFIX)


def seal(purpose, plaintext, context):
    """``plaintext`` sealed with the current key, bound to ``purpose`` and ``context`` (e.g. the row's owner)."""
    if not _keys:
        raise SealError("no SECRET_KEY configured to seal with")
    nonce = os.urandom(_NONCE)
    box = _derive(_keys[0], purpose).encrypt(nonce, plaintext.encode(), context.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + box).decode().rstrip("=")


def unseal(purpose, value, context):
    """(plaintext, opened with the current key?) of a sealed value; SealError when no configured key opens it."""
    if not is_sealed(value):
        raise SealError("not a sealed value")
    body = value[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise SealError("a damaged sealed value") from None
    if len(raw) <= _NONCE + 16:
        raise SealError("a damaged sealed value")
    for i, key in enumerate(_keys):
        try:
            plain = _derive(key, purpose).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except InvalidTag:
            continue
        return plain.decode(), i == 0
    raise SealError("no configured SECRET_KEY opens this value")
