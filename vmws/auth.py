"""Tokens → principals, and what a principal may do.

Algorithms and keys come from configuration, never from the token (``alg: none``
and HS/RS confusion are impossible by construction): HS256 with a shared secret by
default, or RS256/ES256 with a PEM public key or a JWKS file. Claims: ``sub`` and
``exp`` required, ``nbf``/``iat`` honoured, ``jti`` (optional) names one token so it
can be revoked alone, ``permissions`` a list of ``read``, ``control``, ``console``,
``watch``, ``audit``, ``metrics``, ``admin``; optional ``vms`` a list of VM names the token may reach: glob
patterns, or exact names when prefixed with ``=`` (``=web[1]`` is the VM ``web[1]``).

One expiry rule everywhere: a token is accepted while ``now < exp + LEEWAY_SECONDS``
(clock skew between issuer and server), at the handshake, on REST, when trading it for
a ticket, and by an open session; the principal's ``expires_at`` is that moment, and a
ticket never outlives it.

``aud``: with RS256/ES256 the keys usually belong to an identity provider that signs
tokens for many services, so an audience (``--jwt-audience``) is required and checked;
an HS256 secret is vmws's own, so ``aud`` is checked only when an audience is configured.
"""

from __future__ import annotations

import enum
import fnmatch
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from vmws.codes import CloseCode
from vmws.errors import AuthError

__all__ = [
    "Permission",
    "Principal",
    "TokenVerifier",
    "mint_token",
    "permission_set",
    "generate_secret",
    "MIN_SECRET_BYTES",
    "LEEWAY_SECONDS",
    "EXACT_PREFIX",
]

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
# Clock skew tolerated on exp/nbf/iat, the same for every credential check.
LEEWAY_SECONDS = 10
# A ``vms`` entry starting with this is an exact VM name, not a glob.
EXACT_PREFIX = "="
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")


class Permission(str, enum.Enum):
    READ = "read"  # monitoring endpoint and /api/vms
    CONTROL = "control"  # commands
    CONSOLE = "console"  # console endpoint: watch or type
    WATCH = "watch"  # console endpoint, watch-only (input refused)
    AUDIT = "audit"  # GET /api/audit
    METRICS = "metrics"  # GET /metrics (Prometheus)
    ADMIN = "admin"  # POST /api/revocations


_PERMISSIONS = {p.value: p for p in Permission}
# Every principal with the same permissions shares one frozenset (a small set is 216 B,
# kept by each connection): at most 2**len(Permission) of them, so the table is bounded.
_PERMISSION_SETS: dict[frozenset[Permission], frozenset[Permission]] = {}


def permission_set(permissions: Iterable[Permission]) -> frozenset[Permission]:
    """The shared frozenset of these permissions."""
    fresh = frozenset(permissions)
    return _PERMISSION_SETS.setdefault(fresh, fresh)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is connected, what they may do, and until when."""

    sub: str
    permissions: frozenset[Permission]
    vms: tuple[str, ...] | None
    # Wall-clock time (epoch seconds) from which the credential is refused: exp + leeway.
    expires_at: float
    # The token's ``jti`` claim, if it has one: what a revocation of this one token names.
    jti: str | None = None
    # A cluster node that forwarded this user's screen here (vmws/cluster/screen_forward.py):
    # set only in the tickets nodes buy for each other, never from a token.
    via: str | None = None

    def may_reach(self, vm: str) -> bool:
        return self.vms is None or any(_vm_matches(vm, p) for p in self.vms)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def require(self, permission: Permission, vm: str | None = None) -> None:
        """Raise ``AuthError`` (close 4003) unless allowed; checked before any VM lookup."""
        if permission not in self.permissions:
            raise AuthError(f"token lacks the '{permission.value}' permission", CloseCode.FORBIDDEN)
        if vm is not None and not self.may_reach(vm):
            raise AuthError(f"token does not grant access to VM {vm!r}", CloseCode.FORBIDDEN)

    def permission_names(self) -> list[str]:
        return [p.value for p in Permission if p in self.permissions]


def _vm_matches(vm: str, entry: str) -> bool:
    """``=NAME`` is NAME exactly (names may hold ``*``, ``?`` and ``[``); anything else a glob."""
    if entry.startswith(EXACT_PREFIX):
        return vm == entry[len(EXACT_PREFIX) :]
    return fnmatch.fnmatchcase(vm, entry)


def generate_secret() -> str:
    # Hex, not base64url: a secret starting with "-" would read as a flag on a command line.
    return secrets.token_hex(MIN_SECRET_BYTES)


def _check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes (256 bits); "
            "generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )


class TokenVerifier:
    """Verifies tokens with the configured algorithm and key, and nothing else."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        algorithm: str = "HS256",
        public_key: str | None = None,
        jwks: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._jwks: dict[str, Any] | None = None
        if algorithm == "HS256":
            if not secret:
                raise ValueError("HS256 needs a secret (--jwt-secret or VMWS_JWT_SECRET)")
            _check_secret(secret)
            self._key: Any = secret
        elif algorithm in ASYMMETRIC_ALGORITHMS:
            if not audience:
                # An identity provider's keys sign tokens for every service it serves:
                # without an audience, a token minted for another service would open VMs.
                raise ValueError(
                    f"{algorithm} needs the audience vmws tokens are issued for (--jwt-audience); "
                    "the provider's keys also sign tokens meant for other services"
                )
            if jwks:
                self._jwks = _load_jwks(jwks, algorithm)
                self._key = None
            elif public_key:
                self._key = public_key
            else:
                raise ValueError(
                    f"{algorithm} needs a public key (--jwt-public-key FILE) or a JWKS file (--jwt-jwks FILE)"
                )
        else:
            raise ValueError(f"unsupported JWT algorithm {algorithm!r}; use HS256, RS256 or ES256")
        self.algorithm = algorithm
        self.audience = audience
        self.issuer = issuer

    def verify(self, token: str | None) -> Principal:
        """The token's principal, or ``AuthError`` (close 4001) saying what is wrong."""
        if not token:
            raise AuthError("missing token: pass ?token=... or an Authorization: Bearer header")
        key = self._key if self._jwks is None else self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token is not valid yet (nbf/iat in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the required claim '{exc.claim}'") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience (aud) is not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer (iss) is not accepted") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"token algorithm is not accepted; this server requires {self.algorithm}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthError("token is malformed or invalid") from None
        return _principal_from(claims)

    def _key_for(self, token: str) -> Any:
        """The configured JWKS key the token's ``kid`` names (never fetched from a URL)."""
        assert self._jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise AuthError("token is malformed or invalid") from None
        if not isinstance(kid, str) or kid not in self._jwks:
            raise AuthError("token key id (kid) is missing or not among the configured keys")
        return self._jwks[kid]


def _load_jwks(text: str, algorithm: str) -> dict[str, Any]:
    """Keys of a JWKS document by ``kid``; keys meant for another algorithm are left out."""
    try:
        keyset = jwt.PyJWKSet.from_json(text)
    except (jwt.PyJWKSetError, ValueError) as exc:
        raise ValueError(f"JWKS file is not a valid key set: {exc}") from None
    keys = {
        k.key_id: k.key
        for k in keyset.keys
        if k.key_id and k.algorithm_name in (algorithm, None) and getattr(k, "public_key_use", "sig") in ("sig", None)
    }
    if not keys:
        raise ValueError(f"JWKS file has no {algorithm} signing keys with a 'kid'")
    return keys


def _principal_from(claims: dict[str, Any]) -> Principal:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise AuthError("token 'sub' must be a non-empty string")
    try:
        sub.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON) could be sent nowhere
        raise AuthError("token 'sub' is not valid Unicode text") from None
    raw_perms = claims.get("permissions", [])
    if not isinstance(raw_perms, list) or not all(isinstance(p, str) for p in raw_perms):
        raise AuthError("token 'permissions' must be a list of strings")
    raw_vms = claims.get("vms")
    if raw_vms is not None and (not isinstance(raw_vms, list) or not all(isinstance(v, str) for v in raw_vms)):
        raise AuthError("token 'vms' must be a list of glob patterns or '=' exact names")
    # Unknown permission names are ignored, so newer issuers can add permissions.
    perms = permission_set(_PERMISSIONS[p] for p in raw_perms if p in _PERMISSIONS)
    try:  # PyJWT has checked exp is a number and not past (with the leeway); 10**400 is one
        exp = float(claims["exp"])
    except (OverflowError, TypeError, ValueError):
        raise AuthError("token 'exp' is out of range") from None
    vms = tuple(raw_vms) if raw_vms is not None else None
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not jti):
        raise AuthError("token 'jti' must be a non-empty string")
    return Principal(sub, perms, vms, exp + LEEWAY_SECONDS, jti)


def mint_token(
    secret: str,
    *,
    sub: str,
    permissions: list[str],
    now: float,
    ttl: float = 3600.0,
    vms: list[str] | None = None,
) -> str:
    """An HS256 token with the claims this server understands, and a random ``jti``
    (so this one token can be revoked without revoking its subject)."""
    _check_secret(secret)
    unknown = [p for p in permissions if p not in _PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission(s) {', '.join(unknown)}; use {', '.join(_PERMISSIONS)}")
    claims: dict[str, Any] = {
        "sub": sub,
        "jti": secrets.token_hex(12),
        "iat": int(now),
        "exp": int(now + ttl),
        "permissions": permissions,
    }
    if vms is not None:
        claims["vms"] = vms
    return jwt.encode(claims, secret, algorithm="HS256")
