"""Token checks: every way a token can be wrong, and the vms patterns."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from vmws.auth import LEEWAY_SECONDS, Permission, Principal, TokenVerifier, mint_token
from vmws.errors import AuthError
from vmws.tickets import TicketStore

SECRET = "s" * 32
NOW = time.time()


def hs(claims: dict[str, object], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def good_claims(**over: object) -> dict[str, object]:
    claims: dict[str, object] = {"sub": "alice", "exp": int(NOW + 3600), "iat": int(NOW), "permissions": ["read"]}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def rejected(verifier: TokenVerifier, token: str | None) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert caught.value.close_code == 4001 and caught.value.code == "AUTH_ERROR"
    return caught.value.message


def test_valid_token_gives_principal() -> None:
    principal = TokenVerifier(secret=SECRET).verify(hs(good_claims(permissions=["read", "console", "bogus"])))
    assert principal.sub == "alice"
    assert principal.permissions == {Permission.READ, Permission.CONSOLE}
    assert principal.vms is None and principal.may_reach("anything")


def test_minted_token_equals_hand_made_one() -> None:
    now = time.time()  # not the module's NOW: a long run may reach this test minutes later
    minted = mint_token(SECRET, sub="bob", permissions=["control"], now=now, ttl=60, vms=["web-*"])
    principal = TokenVerifier(secret=SECRET).verify(minted)
    assert principal.permissions == {Permission.CONTROL}
    assert principal.vms == ("web-*",)
    assert principal.expires_at == int(now + 60) + LEEWAY_SECONDS  # refused from exp + leeway on


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("garbage", "malformed"),
        (hs(good_claims(exp=int(NOW - 120))), "expired"),
        (hs(good_claims(nbf=int(NOW + 86400))), "not valid yet"),  # a day ahead: tokens are made at collection
        (hs(good_claims(), secret="x" * 32), "signature is invalid"),
        (hs(good_claims(sub=None)), "'sub'"),
        (hs(good_claims(exp=None)), "'exp'"),
        (hs(good_claims(permissions="read")), "'permissions'"),
        (hs(good_claims(vms="web-*")), "'vms'"),
    ],
    # Ids from the expectation, not the token: tokens carry the time, and every xdist
    # worker must collect the same test names.
    ids=["none", "empty", "garbage", "expired", "nbf", "signature", "no-sub", "no-exp", "perms", "vms"],
)
def test_bad_tokens_are_refused(token: str | None, fragment: str) -> None:
    assert fragment in rejected(TokenVerifier(secret=SECRET), token)


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(good_claims(), None, algorithm="none")
    assert "algorithm" in rejected(TokenVerifier(secret=SECRET), unsigned)


def _rsa_pem() -> tuple[object, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, public


def test_rs256_accepts_rsa_and_refuses_hs256_signed_with_the_public_key() -> None:
    key, public = _rsa_pem()
    verifier = TokenVerifier(algorithm="RS256", public_key=public, audience="vmws")
    assert verifier.verify(jwt.encode(good_claims(aud="vmws"), key, algorithm="RS256")).sub == "alice"
    # HS/RS confusion: an HS256 token whose "secret" is the server's public key.
    assert "algorithm" in rejected(verifier, hs256_by_hand(good_claims(aud="vmws"), public.encode()))
    assert "algorithm" in rejected(verifier, hs(good_claims(aud="vmws")))


def hs256_by_hand(claims: dict[str, object], key: bytes) -> str:
    """PyJWT refuses a PEM key as an HMAC secret, so forge the token the attacker's way."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def test_es256_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = TokenVerifier(algorithm="ES256", public_key=public, audience="vmws")
    assert verifier.verify(jwt.encode(good_claims(aud="vmws"), key, algorithm="ES256")).sub == "alice"


def test_audience_and_issuer_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="vmws", issuer="https://idp.example")
    ok = hs(good_claims(aud="vmws", iss="https://idp.example"))
    assert verifier.verify(ok).sub == "alice"
    assert "audience" in rejected(verifier, hs(good_claims(aud="other", iss="https://idp.example")))
    assert "issuer" in rejected(verifier, hs(good_claims(aud="vmws", iss="https://evil.example")))


def test_vms_patterns_and_permissions() -> None:
    principal = TokenVerifier(secret=SECRET).verify(hs(good_claims(vms=["web-*", "db-1"])))
    assert principal.may_reach("web-3") and principal.may_reach("db-1")
    assert not principal.may_reach("db-2") and not principal.may_reach("my-vm")
    principal.require(Permission.READ, "web-1")
    with pytest.raises(AuthError) as caught:
        principal.require(Permission.READ, "my-vm")
    assert caught.value.close_code == 4003
    with pytest.raises(AuthError) as caught:
        principal.require(Permission.CONTROL, "web-1")
    assert caught.value.close_code == 4003 and "control" in caught.value.message


def test_short_secrets_and_unknown_algorithms_refused_at_start() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier(secret="short")
    with pytest.raises(ValueError, match="unsupported"):
        TokenVerifier(secret=SECRET, algorithm="HS512")
    with pytest.raises(ValueError, match="public key"):
        TokenVerifier(algorithm="RS256", audience="vmws")


def test_jwks_file_picks_the_key_by_kid_and_never_by_the_token() -> None:
    first, second = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    keys = []
    for kid, key in (("k1", first), ("k2", second)):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    verifier = TokenVerifier(algorithm="RS256", jwks=json.dumps({"keys": keys}), audience="vmws")
    for kid, key in (("k1", first), ("k2", second)):
        signed = jwt.encode(good_claims(aud="vmws"), key, algorithm="RS256", headers={"kid": kid})
        assert verifier.verify(signed).sub == "alice"
    # Signed by k2's private key but claiming to be k1: k1's public key refuses it.
    wrong = jwt.encode(good_claims(aud="vmws"), second, algorithm="RS256", headers={"kid": "k1"})
    assert "signature" in rejected(verifier, wrong)
    unknown = jwt.encode(good_claims(aud="vmws"), first, algorithm="RS256", headers={"kid": "k9"})
    assert "kid" in rejected(verifier, unknown)
    # A key URL in the token is never fetched: without a configured kid it is refused.
    remote = jwt.encode(good_claims(aud="vmws"), first, algorithm="RS256", headers={"jku": "http://127.0.0.1:1/keys"})
    assert "kid" in rejected(verifier, remote)
    with pytest.raises(ValueError, match="JWKS"):
        TokenVerifier(algorithm="RS256", jwks='{"keys": "nope"}', audience="vmws")


def test_asymmetric_keys_need_an_audience_and_tokens_must_carry_it() -> None:
    # An identity provider's key signs tokens for its other services too.
    key, public = _rsa_pem()
    with pytest.raises(ValueError, match="--jwt-audience"):
        TokenVerifier(algorithm="RS256", public_key=public)
    with pytest.raises(ValueError, match="--jwt-audience"):
        TokenVerifier(algorithm="ES256", jwks='{"keys": []}')
    verifier = TokenVerifier(algorithm="RS256", public_key=public, audience="vmws")
    for claims in (good_claims(), good_claims(aud="wiki")):
        assert "aud" in rejected(verifier, jwt.encode(claims, key, algorithm="RS256"))
    # HS256: the secret is vmws's own; aud is checked only when configured.
    assert TokenVerifier(secret=SECRET).verify(hs(good_claims(aud="anything"))).sub == "alice"


def test_vms_entries_prefixed_with_equals_are_exact_names() -> None:
    principal = TokenVerifier(secret=SECRET).verify(hs(good_claims(vms=["=web[1]", "=db*", "cache-?"])))
    assert principal.may_reach("web[1]") and principal.may_reach("db*")
    assert not principal.may_reach("web1")  # as a glob, web[1] would grant web1
    assert not principal.may_reach("db-1") and not principal.may_reach("=web[1]")
    assert principal.may_reach("cache-1")  # unprefixed entries stay globs


@pytest.mark.parametrize(("age", "accepted"), [(LEEWAY_SECONDS - 3, True), (LEEWAY_SECONDS + 3, False), (20, False)])
def test_leeway_is_at_most_ten_seconds(age: int, accepted: bool) -> None:
    assert LEEWAY_SECONDS <= 10
    token = hs(good_claims(exp=int(time.time()) - age))
    verifier = TokenVerifier(secret=SECRET)
    if accepted:
        assert verifier.verify(token).expires_at == int(time.time()) - age + LEEWAY_SECONDS
    else:
        assert "expired" in rejected(verifier, token)


def test_nbf_gets_the_same_leeway() -> None:
    verifier = TokenVerifier(secret=SECRET)
    assert verifier.verify(hs(good_claims(nbf=int(time.time()) + LEEWAY_SECONDS - 3))).sub == "alice"
    assert "not valid yet" in rejected(verifier, hs(good_claims(nbf=int(time.time()) + LEEWAY_SECONDS + 3)))


def test_an_exp_too_large_for_a_float_is_refused_cleanly() -> None:
    assert "'exp'" in rejected(TokenVerifier(secret=SECRET), hs(good_claims(exp=10**400)))


class FakeClocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0


def _principal(clocks: FakeClocks, sub: str = "alice", token_left: float = 3600) -> Principal:
    return Principal(sub, frozenset({Permission.READ}), None, clocks.wall + token_left)


def test_ticket_lives_no_longer_than_its_token() -> None:
    clocks = FakeClocks()
    store = TicketStore(ttl=30, clock=lambda: clocks.mono, wall=lambda: clocks.wall)
    ticket = store.issue(_principal(clocks, token_left=5))
    clocks.mono += 5
    clocks.wall += 5
    with pytest.raises(AuthError) as caught:
        store.redeem(ticket)
    assert caught.value.close_code == 4001
    # Within the token's life, the TTL still rules.
    ticket = store.issue(_principal(clocks))
    clocks.mono += 29.9
    clocks.wall += 29.9
    assert store.redeem(ticket).sub == "alice"
    with pytest.raises(AuthError, match="expired"):
        store.issue(_principal(clocks, token_left=0))


def test_outstanding_tickets_are_capped_per_subject_and_freed_by_use_and_expiry() -> None:
    clocks = FakeClocks()
    store = TicketStore(ttl=30, clock=lambda: clocks.mono, wall=lambda: clocks.wall)
    alice, bob = _principal(clocks), _principal(clocks, "bob")
    tickets = [store.issue(alice) for _ in range(100)]
    with pytest.raises(AuthError) as caught:
        store.issue(alice)
    assert caught.value.close_code == 4029 and "limit 100" in caught.value.message
    assert store.issue(bob)
    store.redeem(tickets[0])
    assert store.issue(alice) and store.outstanding("alice") == 100
    clocks.mono += 31  # every ticket expired: the cap frees itself
    assert store.issue(alice) and store.outstanding("alice") == 1


def test_the_global_pool_stays() -> None:
    clocks = FakeClocks()
    store = TicketStore(ttl=30, limit=3, clock=lambda: clocks.mono, wall=lambda: clocks.wall)
    for sub in ("a", "b", "c"):
        store.issue(_principal(clocks, sub))
    with pytest.raises(AuthError, match="too many outstanding tickets; try again"):
        store.issue(_principal(clocks, "d"))


def test_operator_permissions_and_jti_are_read_from_the_token() -> None:
    names = ["read", "control", "console", "watch", "audit", "metrics", "admin"]
    minted = mint_token(SECRET, sub="ops", permissions=names, now=time.time(), ttl=60)
    principal = TokenVerifier(secret=SECRET).verify(minted)
    assert principal.permission_names() == names
    assert principal.jti == jwt.decode(minted, options={"verify_signature": False})["jti"]
    other = mint_token(SECRET, sub="ops", permissions=["read"], now=time.time(), ttl=60)
    assert TokenVerifier(secret=SECRET).verify(other).jti != principal.jti  # one per token
    assert TokenVerifier(secret=SECRET).verify(hs(good_claims())).jti is None
    for bad in (7, "", ["x"]):  # PyJWT refuses a non-string itself ("malformed or invalid")
        rejected(TokenVerifier(secret=SECRET), hs(good_claims(jti=bad)))


def test_minting_an_unknown_permission_names_every_known_one() -> None:
    with pytest.raises(ValueError, match="use read, control, console, watch, audit, metrics, admin"):
        mint_token(SECRET, sub="x", permissions=["root"], now=time.time())


def test_watch_is_a_permission_tokens_can_carry() -> None:
    secret = "w" * 32
    principal = TokenVerifier(secret=secret).verify(
        mint_token(secret, sub="eve", permissions=["watch"], now=time.time())
    )
    assert principal.permissions == frozenset({Permission.WATCH})
    assert principal.permission_names() == ["watch"]
