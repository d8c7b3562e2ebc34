"""The ICE servers a call's two pages are given: STUN as configured, TURN with a short-lived
credential for coturn's TURN REST API mode (`use-auth-secret`), issued per call.

Pure: the caller passes the time and the call's end bound; nothing here reads a clock.

coturn's TURN REST API (README.turnserver, "TURN REST API"; draft-uberti-behave-turn-rest-00):
    username   = "<expiry, Unix seconds>" + separator + "<user id>"
    credential = base64(HMAC-SHA1(key=static-auth-secret, message=username))
coturn refuses an Allocate whose username timestamp lies in the past. It checks the timestamp
once per TURN session (on the first authenticated request), so the expiry bounds when a page
can open a relay, not how long a relay already open keeps running.
"""
import base64
import dataclasses
import hashlib
import hmac

# coturn's --rest-api-separator default; the server must run with the same character.
REST_API_SEPARATOR = ":"

# Upper bound on one credential's lifetime even when a call's end bound is far off (upgraded
# hosts have no length limit): a page that re-attaches later simply gets a fresh one.
DEFAULT_MAX_CREDENTIAL_LIFETIME_S = 6 * 60 * 60


class TurnCredentialError(ValueError):
    """A credential was asked for that must not be issued."""


@dataclasses.dataclass(frozen=True)
class TurnConfig:
    stun_urls: tuple = ()
    turn_urls: tuple = ()
    secret: str = ""  # coturn's --static-auth-secret
    max_credential_lifetime_s: float = DEFAULT_MAX_CREDENTIAL_LIFETIME_S

    def __post_init__(self):
        object.__setattr__(self, "stun_urls", tuple(self.stun_urls))
        object.__setattr__(self, "turn_urls", tuple(self.turn_urls))
        if self.turn_urls and not self.secret:
            raise TurnCredentialError("TURN urls are configured but the TURN shared secret is empty")
        if self.max_credential_lifetime_s <= 0:
            raise TurnCredentialError(
                f"the TURN credential lifetime cap must be positive, not {self.max_credential_lifetime_s}")


def turn_config(settings):
    """The TURN part of the settings (interkanect/config.py's stun_urls, turn_urls, turn_secret,
    turn_credential_max_lifetime_s), checked."""
    return TurnConfig(stun_urls=tuple(settings.stun_urls), turn_urls=tuple(settings.turn_urls),
                      secret=settings.turn_secret, max_credential_lifetime_s=settings.turn_credential_max_lifetime_s)


def rest_username(expires_at_s, call_id):
    """The TURN username: the expiry in whole Unix seconds, then the call it was issued for."""
    if not call_id:
        raise TurnCredentialError("a TURN credential needs a call id")
    if REST_API_SEPARATOR in call_id:
        raise TurnCredentialError(f"call id {call_id!r} contains the TURN REST separator {REST_API_SEPARATOR!r}")
    return f"{int(expires_at_s)}{REST_API_SEPARATOR}{call_id}"


def rest_credential(secret, username):
    """The password coturn derives for `username` from its static-auth-secret."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def credential_expiry_s(config, now_s, expires_at_s):
    """When the credential stops opening relays: the call's end bound, capped by the lifetime."""
    if expires_at_s <= now_s:
        raise TurnCredentialError(f"cannot issue a TURN credential for a call that ended at {expires_at_s}"
                                  f" (now {now_s})")
    return min(expires_at_s, now_s + config.max_credential_lifetime_s)


def ice_servers(config, call_id, now_s, expires_at_s):
    """The browser's RTCConfiguration.iceServers for one page of call `call_id`."""
    servers = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls:
        username = rest_username(credential_expiry_s(config, now_s, expires_at_s), call_id)
        servers.append({"urls": list(config.turn_urls), "username": username,
                        "credential": rest_credential(config.secret, username)})
    return servers
