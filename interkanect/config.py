"""Settings: built-in defaults, then one TOML file, then IK_* environment variables.

Every duration of the product rules is a policy value here with the FAQ's default, so a
test can run a 5-minute window in a second by setting IK_NEGOTIATION_WINDOW_S=1.
"""
import dataclasses
import ipaddress
import os
import tomllib
from pathlib import Path

CONFIG_FILE_ENV = "IK_CONFIG"
# What the local PayPal emulator (`interkanect paypal-emulator`) answers to by default.
EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
EMULATOR_WEBHOOK_ID = "EMULATORWEBHOOKID"
DEFAULT_CONFIG_FILE = "interkanect.toml"
CALL_HOSTINGS = ("shard", "process")
# PayPal: "up to 15,000 individual payouts in one API call" (as rules/payout_rules.py plans them).
PAYPAL_MAX_PAYOUT_ITEMS = 15_000


@dataclasses.dataclass(frozen=True)
class Policy:
    """Durations and limits of the product rules (seconds unless the name says otherwise)."""

    ring_timeout_s: float = 60
    negotiation_window_s: float = 5 * 60
    # How long the host has to answer "extend?" when paid time is up (media stays up meanwhile).
    extension_offer_s: float = 60
    payment_window_s: float = 10 * 60
    free_tier_cap_s: float = 20 * 60
    reconnect_grace_s: float = 2 * 60
    # A member stays in its shard this long after their last page, so a refresh finds it warm.
    member_exit_grace_s: float = 30
    session_ttl_s: float = 30 * 24 * 3600
    reset_token_ttl_s: float = 3600
    # Login throttling: failures allowed per window, per account and per address.
    login_window_s: float = 15 * 60
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    # Websocket liveness and hygiene.
    ws_ping_interval_s: float = 20
    # A peer that has not answered a ping within this is closed (at most the interval).
    ws_ping_timeout_s: float = 20
    session_check_interval_s: float = 2
    ws_max_frame_bytes: int = 64 * 1024
    # A client may send this many frames per second on average, in bursts of flood_burst.
    flood_rate_per_s: float = 50
    flood_burst: int = 200
    avatar_max_bytes: int = 1024 * 1024
    # Work one account can cause (issue 13: one free account could stall everyone). A member's
    # open pages (websockets) over all gateways; a page beyond it is refused (too_many_pages).
    pages_per_member_max: int = 16
    # Members one page follows (the directory shows at most 200), and one account's pages on
    # one gateway follow together; ids of nobody are refused (no_such_member).
    watched_per_page_max: int = 500
    watched_per_member_max: int = 1000
    # A caller rings one member at a time (already_calling); a host is rung at most this often
    # a minute, by everyone together (too_many_rings).
    ringing_calls_per_caller_max: int = 1
    rings_per_host_per_minute: int = 10
    # At most one missed-call mail per host in this interval; the rest come in one digest.
    missed_call_mail_interval_s: float = 15 * 60
    # Tips: one awaiting the caller's approval at a time (tip_pending), this many per call
    # (too_many_tips).
    tips_pending_per_call_max: int = 1
    tips_per_call_max: int = 50
    # A call's stored log keeps this many entries; past it, joins, drops, proposals and tip
    # requests are counted in one summary entry (money and state changes are always kept).
    call_log_max_entries: int = 300
    # Connection quality as evidence (rules/quality.py): each call page sends a summary of its
    # connection's statistics this often; a side's timeline keeps at most this many samples,
    # then neighbours are merged (worst of each pair), so a call of any length stays bounded.
    quality_interval_s: float = 5
    quality_samples_max: int = 120
    # Terms: a price is 0 (free) or within these bounds; below the minimum PayPal's fee
    # (3.49% + $0.49) would eat most of it.
    min_price_cents: int = 200
    max_price_cents: int = 500_000
    min_length_s: int = 60
    max_length_s: int = 8 * 3600
    # A call's earnings are held from payout this long after it ends: the caller's refund window.
    earnings_hold_s: float = 24 * 3600
    # Multi-node liveness (docs/operating.md). A joined actor node checks in with the leader every
    # convention_checkin_s; after convention_missed_checkins silent periods it is declared dead
    # and its member shards start on a surviving node (Thespian's default: 7m22s x 3).
    convention_checkin_s: float = 2
    convention_missed_checkins: int = 3
    # Each gateway's bridge tells every member shard it is alive this often; after
    # bridge_missed_heartbeats silent intervals its connections are closed (presence, calls).
    bridge_heartbeat_s: float = 1
    # 5, not 3: with 2,000 members reconnecting at once on 2 cores (scripts/loadgen.py) a busy
    # gateway's heartbeat came more than 3 s late and all its pages were dropped.
    bridge_missed_heartbeats: int = 5
    # How long the leader waits for `member_nodes` member-hosting nodes before placing shards.
    node_wait_s: float = 60
    # The leader holds a lease in the database, renewed every third of this; unrenewed this
    # long, another node takes it over (actors/leadership.py, docs/operating.md).
    leader_lease_s: float = 6
    # The caller may ask for a refund this long after the call ends.
    refund_window_s: float = 24 * 3600
    # Operators decide a refund request within this many U.S. business days of it.
    refund_review_business_days: int = 7
    # The payments adapter reads a call it asked to capture for this long after the capture
    # (the session answers within milliseconds, its decision stored before it acts), and again
    # after this while the call has not decided (a session ending as the capture came may never
    # answer).
    capture_settle_check_s: float = 2
    # A PENDING capture (an eCheck clears in days) is read from PayPal from this on, doubling up
    # to capture_follow_max_s; so is a capture whose answer was lost.
    capture_follow_s: float = 5
    capture_follow_max_s: float = 600
    # An approved refund that PayPal did not complete (down, refused for now) is tried again
    # after this, doubling per attempt up to a day; a restarted node resumes it at once.
    refund_retry_s: float = 60
    # A refund PayPal holds PENDING (an eCheck takes days) is read from PayPal this often until
    # it completes, fails or is cancelled (its webhook, when it comes, reads it at once).
    refund_poll_s: float = 3600
    # The weekly payout run starts this long before its instant (Friday 19:00 Pacific), so the
    # money has left by then (a 10,000-member run takes seconds; scripts/bench_money.py). Earnings
    # whose hold ends in between wait for the next payout.
    payout_lead_s: float = 3600
    # A refund PayPal FAILED or CANCELLED is asked again (a new refund, a new request id) up to
    # this many refunds per capture in all; then operators are told and decide by hand.
    refund_attempts_max: int = 3
    # Past login_failures_per_account in a window, each further log-in on that account waits
    # this long after the one before, doubling up to login_slowdown_max_s, and the right
    # password then succeeds: failures by others slow the owner down, never lock them out.
    login_slowdown_s: float = 1
    login_slowdown_max_s: float = 60
    # Sign-ups and password-reset requests per client address and per email in each window
    # (too_many_signups, too_many_reset_requests); the per-email ones also bound the mails we
    # send one inbox.
    signup_reset_window_s: float = 3600
    signups_per_address: int = 20
    signups_per_email: int = 3
    reset_requests_per_address: int = 10
    reset_requests_per_email: int = 3
    # An avatar's width × height: a small file can claim a picture too big to decode.
    avatar_max_pixels: int = 4096 * 4096
    # Followers (rules/follow_rules.py). A member's return is announced to their followers only
    # after they were away (no page open, past member_exit_grace_s) this long: an hour, so a
    # closed laptop over lunch or a dropped connection is not news, a morning's return is.
    follow_away_s: float = 3600
    # At most one notice (page or mail) per member per follower in this interval: a member who
    # comes and goes all day is announced once a day, as the issue asks.
    follow_notice_interval_s: float = 24 * 3600


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    # Where browsers reach the gateway; decides the Origin allowlist and links in emails.
    public_url: str = ""
    allowed_origins: tuple = ()
    # Proxies in front of the gateway (addresses or CIDR networks). When the peer is one of
    # them, the client is the right-most address of X-Forwarded-For that is not; otherwise the
    # peer. Log-in, sign-up and reset limits count per client address.
    trusted_proxies: tuple = ()
    # Who may read a gateway's GET /metrics besides this machine: Prometheus's networks (CIDRs).
    metrics_networks: tuple = ()
    # A node's Prometheus metrics (its actor processes, CPU, memory, file descriptors) on this
    # port of actor_host; 0: none.
    node_metrics_port: int = 0
    # Check every frame a gateway sends against schemas/server.json (tests, debugging): a frame
    # a page could not read fails loudly at the gateway instead of confusing the page.
    check_frames: bool = False
    data_dir: str = "var"
    # The Ed25519 key that signs call records (PEM); empty: data_dir/record-ed25519.pem, made on
    # first use. Every gateway of a deployment must read the same file.
    record_key_file: str = ""
    mongodb_url: str = ""
    db_host: str = "127.0.0.1"
    db_port: int = 27018
    db_name: str = "interkanect"
    admin_port: int = 19010
    # The one address every actor socket of this machine listens on and advertises (the node's
    # admin, its actors, the gateways' bridges). Thespian's transport runs whatever a
    # connection sends, unauthenticated: 127.0.0.1, or with several machines this machine's
    # private address behind a firewall, never a public one (docs/operating.md).
    actor_host: str = "127.0.0.1"
    # Where a gateway listens, on actor_host, for the other gateways' links (a call's signaling
    # between pages on two gateways: gateway/links.py); 0: any free port, said in its leases.
    gateway_link_port: int = 0
    # Where member shard i listens, on actor_host, for the gateways' streams (their pages'
    # events and what goes back: actors/shard_stream.py) : this port + i; 0: any free port,
    # told to each gateway when it asks the shard.
    shard_stream_port: int = 0
    # Member shards in the deployment (processes hosting the online members and their calls);
    # 0: one per core of each member-hosting node, `member_shards_in_use` (README "Decisions").
    member_shards: int = 0
    # Where call sessions run: "shard", inside their host's member shard (a call costs no process
    # and a frame one hop less; README "Decisions"), or "process", a Thespian actor process each
    # (isolation, debugging).
    call_hosting: str = "shard"
    # Actor nodes (docs/operating.md): empty `join` makes this node the convention leader (it runs
    # the directory); HOST:PORT joins that leader. `node_name` defaults to hostname:admin_port.
    join: str = ""
    node_name: str = ""
    hosts_members: bool = True        # member shards (members and their calls) may live here
    member_nodes: int = 1             # the leader spreads shards once this many such nodes are in
    tls_cert_file: str = ""
    tls_key_file: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "interKanect <no-reply@interkanect.local>"
    log_level: str = "INFO"
    # ICE servers handed to the two participants of a call; TURN entries get short-lived
    # credentials for coturn's use-auth-secret mode, signed with turn_secret.
    stun_urls: tuple = ()
    turn_urls: tuple = ()
    turn_secret: str = ""
    turn_credential_max_lifetime_s: float = 6 * 3600
    # PayPal: live or sandbox credentials, or none for the local emulator that `serve` starts.
    paypal_base_url: str = ""          # e.g. https://api-m.sandbox.paypal.com
    paypal_client_id: str = ""
    paypal_client_secret: str = ""
    paypal_webhook_id: str = ""
    paypal_emulator_port: int = 8889
    # How long one PayPal API request may take before it is retried (same PayPal-Request-Id).
    paypal_timeout_s: float = 15
    # The local emulator's fee per delivered payout item (PayPal's depends on the account's pricing).
    paypal_emulator_payout_item_fee_cents: int = 0
    # Items per payout batch: PayPal takes at most 15,000; a payout for more members goes in
    # several batches. Smaller batches settle sooner and a refused one holds fewer members back.
    paypal_payout_batch_items: int = 15000
    # The first wait before a PayPal request is retried (5xx, timeout, lost answer), doubling
    # per attempt with jitter over 5 attempts (about 15 s in all at 0.5).
    paypal_backoff_s: float = 0.5
    # A deployment that takes real money: serve, gateway and node refuse to start without live
    # PayPal credentials (interkanect/paypal_mode.py), never falling back to the emulator.
    production: bool = False
    policy: Policy = Policy()

    @property
    def paypal_emulated(self):
        return not self.paypal_client_id

    @property
    def paypal_url(self):
        if self.paypal_emulated:
            return f"http://127.0.0.1:{self.paypal_emulator_port}"
        return self.paypal_base_url or "https://api-m.sandbox.paypal.com"

    @property
    def paypal_client_id_in_use(self):
        return self.paypal_client_id or EMULATOR_CLIENT_ID

    @property
    def member_shards_in_use(self):
        return self.member_shards or default_member_shards(os.cpu_count() or 1, self.member_nodes)

    @property
    def paypal_client_secret_in_use(self):
        return self.paypal_client_secret or EMULATOR_CLIENT_SECRET

    @property
    def paypal_webhook_id_in_use(self):
        return self.paypal_webhook_id or EMULATOR_WEBHOOK_ID

    @property
    def url(self):
        if self.public_url:
            return self.public_url.rstrip("/") + "/"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}/"

    @property
    def tls(self):
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def origins(self):
        if self.allowed_origins:
            return frozenset(self.allowed_origins)
        origin = self.url.rstrip("/")
        scheme = "https" if self.tls else "http"
        return frozenset({origin, f"{scheme}://localhost:{self.port}",
                          f"{scheme}://127.0.0.1:{self.port}"})

    @property
    def database_url(self):
        if self.mongodb_url:
            return self.mongodb_url
        return f"mongodb://{self.db_host}:{self.db_port}/?directConnection=true"

    @property
    def embedded_database(self):
        return not self.mongodb_url


def _coerce(value, kind):
    if kind is bool:
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    if kind is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        return tuple(v.strip() for v in str(value).split(",") if v.strip())
    return str(value)


def _overrides(cls, table, environ, prefix):
    out = {}
    for field in dataclasses.fields(cls):
        if field.name == "policy":
            continue
        if field.name in table:
            out[field.name] = _coerce(table[field.name], field.type)
        env_name = prefix + field.name.upper()
        if env_name in environ:
            out[field.name] = _coerce(environ[env_name], field.type)
    return out


def load(environ=None, config_file=None):
    """Settings from defaults < TOML file < environment. Unknown keys are an error."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE
    table = {}
    if Path(path).exists():
        table = tomllib.loads(Path(path).read_text())
    elif config_file or CONFIG_FILE_ENV in environ:
        raise SystemExit(f"config file {path} does not exist")
    policy_table = table.pop("policy", {})
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(table) - known | set(policy_table) - {f.name for f in dataclasses.fields(Policy)}
    if unknown:
        raise SystemExit(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
    policy = Policy(**_overrides(Policy, policy_table, environ, "IK_"))
    settings = Settings(policy=policy, **_overrides(Settings, table, environ, "IK_"))
    if settings.mongodb_url == "" and "MONGODB_URL" in environ:
        settings = dataclasses.replace(settings, mongodb_url=environ["MONGODB_URL"])
    check_actor_host(settings.actor_host)
    for name in ("trusted_proxies", "metrics_networks"):  # refused at start, not at the first request
        for entry in getattr(settings, name):
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise SystemExit(f"error: IK_{name.upper()}: {entry!r} is not an IP address or network") from None
    if not 1 <= settings.paypal_payout_batch_items <= PAYPAL_MAX_PAYOUT_ITEMS:
        raise SystemExit(f"error: IK_PAYPAL_PAYOUT_BATCH_ITEMS is 1 to {PAYPAL_MAX_PAYOUT_ITEMS} (PayPal's limit per "
                         f"batch), not {settings.paypal_payout_batch_items}")
    if settings.call_hosting not in CALL_HOSTINGS:
        raise SystemExit(f"error: IK_CALL_HOSTING is one of {', '.join(CALL_HOSTINGS)}, not {settings.call_hosting!r}")
    return settings


def check_actor_host(host):
    """`host` if it is one IPv4 address that is not a wildcard; else SystemExit saying why."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise SystemExit(f"error: IK_ACTOR_HOST must be one IPv4 address of this machine, not {host!r}") from None
    if address.is_unspecified:
        raise SystemExit("error: IK_ACTOR_HOST may not be 0.0.0.0: the actor transport runs whatever a connection "
                         "sends it; give 127.0.0.1, or this machine's private address (docs/operating.md)")
    return host


def default_member_shards(cores, member_nodes):
    """One shard per core of each member-hosting node (the leader's cores for each): a shard is
    one process, and on a 2-core machine 2 shards made twice the gateway → shard → gateway
    round trips of 8 (bench_presence.py), a burst's frames to fewer shards being fewer actor
    messages."""
    return max(1, cores) * max(1, member_nodes)


def to_environ(settings):
    """The IK_* variables that reproduce these settings in a child process."""
    env = {}
    for field in dataclasses.fields(Settings):
        if field.name == "policy":
            continue
        value = getattr(settings, field.name)
        env["IK_" + field.name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
    for field in dataclasses.fields(Policy):
        env["IK_" + field.name.upper()] = str(getattr(settings.policy, field.name))
    return env
