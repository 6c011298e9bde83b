"""The option registry: every option relay reads, with its type, default, scopes and meaning.

The first block is Momentum's binding_group option table (shared/reference/binding_group.md),
the rest the global and listener options relay needs. `status` says what relay does with an
option: "active" (acted on), "planned" (parsed and validated; a later release acts on it) or
"ignored" (accepted for compatibility with Momentum configurations, never acted on).
`config check` warns about every option set in a configuration that is not active.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import Any, Literal

from relay.config import methods as m
from relay.config import values as v

Status = Literal["active", "planned", "ignored"]

GLOBAL = "global"
BINDING_GROUP = "binding_group"
BINDING = "binding"
DOMAIN = "domain"
HOST = "host"
ESMTP_LISTENER = "esmtp_listener"
LISTEN = "listen"
PEER = "peer"
SWEEP_RULE = "adaptive_sweep_rule"
REPLY_RULE = "adaptive_reply_rule"
WEBHOOK = "webhook"
OPENDKIM = "opendkim"
DKIM_DOMAIN = "dkim_domain"
CLUSTER = "cluster"
DANE_MODULE = "dane"  # Momentum's `dane {}` module stanza: accepted, holds no options
PROVIDER = "provider"
TENANT = "tenant"

OUTBOUND = frozenset({BINDING, BINDING_GROUP, DOMAIN, GLOBAL})
BINDING_SCOPES = frozenset({BINDING, BINDING_GROUP, GLOBAL})
LISTENER = frozenset({ESMTP_LISTENER, LISTEN, PEER})
TLS_EXTRA = frozenset(
    {"ecstream_listener", "http_listener", "pathway", "pathway_group", "xmpp_listener"}
)


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    type: v.ValueType
    default: Any  # a value, or a callable computing it (e.g. the host name)
    scopes: frozenset[str]
    description: str
    status: Status = "planned"

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


@dataclass(frozen=True, slots=True)
class StanzaKind:
    name: str
    labelled: bool  # requires a name: binding "x" { }
    parents: frozenset[str]  # scopes it may appear in
    description: str


def system_hostname() -> str:
    return socket.gethostname()


SECONDS = v.DURATION
TIMEOUT_BOUNDS = v.bounds(v.DURATION)
COUNT_BOUNDS = v.bounds(v.integer(0))

_OPTIONS: list[Option] = []


def _opt(
    name: str,
    type_: v.ValueType,
    default: Any,
    scopes: frozenset[str],
    description: str,
    status: Status = "planned",
) -> None:
    _OPTIONS.append(Option(name, type_, default, scopes, description, status))


def _adaptive_bounds(option: str, type_: v.ValueType) -> None:
    _opt(f"adaptive_{option}", type_, None, OUTBOUND, f"(low high) bounds for {option}")


# --- adaptive delivery (modules.adaptive.md) ---------------------------------------------
_opt("adaptive_adjustment_interval", SECONDS, 60.0, OUTBOUND, "Pace of adaptive adjustments")
_opt("adaptive_alert_email_destination", v.STRING, None, OUTBOUND, "Where alerts are mailed")
_opt("adaptive_alert_email_sender", v.STRING, None, OUTBOUND, "Sender of alert mail")
_opt(
    "adaptive_attempt_threshold",
    v.integer(0),
    2000,
    OUTBOUND,
    "Attempts needed in a period before bounce rates can suspend",
)
_opt("adaptive_default_suspension", SECONDS, 4 * 3600.0, OUTBOUND, "How long to suspend")
_opt(
    "adaptive_default_suspension_enabled",
    v.BOOLEAN,
    False,
    OUTBOUND,
    "Suspend on adaptive_rejection_rate_suspension_percentage",
)
_opt("adaptive_enabled", v.BOOLEAN, False, OUTBOUND, "Enable adaptive delivery in this scope")
_opt(
    "adaptive_fbl_volume_threshold",
    v.integer(0),
    20000,
    OUTBOUND,
    "Deliveries needed in a period before FBL rates are acted on",
)
_opt(
    "adaptive_notification_events",
    v.enum_list("throttle", "suspension", "blackhole"),
    ("throttle", "suspension", "blackhole"),
    OUTBOUND,
    "Events that send an alert mail",
)
_opt("adaptive_notification_interval", SECONDS, 3600.0, OUTBOUND, "At most one alert per")
_opt(
    "adaptive_positive_adjustment_interval",
    SECONDS,
    3600.0,
    OUTBOUND,
    "Pace of upward adjustments",
)
_opt(
    "adaptive_rejection_rate_suspension_percentage",
    v.number(0),
    20.0,
    OUTBOUND,
    "Rejection rate that suspends a binding x domain",
)
_opt("adaptive_retry_fuzz", SECONDS, 4096.0, OUTBOUND, "Spread of bulk retries")
_opt(
    "adaptive_scope",
    v.enum("auto", "local", "global", "binding", "domain"),
    "auto",
    OUTBOUND,
    "Where adaptive state is kept",
)
_opt("adaptive_sweep_rule_enabled", v.BOOLEAN, True, OUTBOUND, "Enable sweep rules here")
for _name, _type in (
    ("body_timeout", TIMEOUT_BOUNDS),
    ("ehlo_timeout", TIMEOUT_BOUNDS),
    ("idle_timeout", TIMEOUT_BOUNDS),
    ("mailfrom_timeout", TIMEOUT_BOUNDS),
    ("rcptto_timeout", TIMEOUT_BOUNDS),
    ("rset_timeout", TIMEOUT_BOUNDS),
    ("max_deliveries_per_connection", COUNT_BOUNDS),
    ("max_outbound_connections", COUNT_BOUNDS),
    ("max_recipients_per_batch", COUNT_BOUNDS),
    ("max_recipients_per_connection", COUNT_BOUNDS),
    ("max_resident_active_queue", COUNT_BOUNDS),
    ("max_retries", COUNT_BOUNDS),
    ("max_retry_interval", TIMEOUT_BOUNDS),
    ("outbound_throttle_messages", v.bounds(v.THROTTLE)),
    ("retry_interval", TIMEOUT_BOUNDS),
):
    _adaptive_bounds(_name, _type)

# --- delivery ---------------------------------------------------------------------------
_opt("bind_address", v.IP_ADDRESS, None, BINDING_SCOPES, "Source address of connections")
_opt(
    "binding_weight",
    v.integer(0),
    1,
    frozenset({BINDING}),
    "Share of the group's traffic (relay extension; 0 = out of rotation)",
)
_opt(
    "blackhole",
    v.BLACKHOLE,
    "false",
    OUTBOUND,
    "Fail (true/inline) or silently drop (internal) mail for this scope",
)
_opt("body_timeout", SECONDS, 600.0, OUTBOUND, "Timeout after the DATA phase")
_opt(
    "bounces_inline_original",
    v.enum("headers", "none", "all", "full"),
    "headers",
    OUTBOUND,
    "How much of the original a bounce carries",
)
_opt(
    "cluster_outbound_throttle_connections",
    v.THROTTLE,
    None,
    frozenset({BINDING_GROUP, DOMAIN, GLOBAL}),
    "Cluster-wide connection rate",
)
_opt(
    "cluster_outbound_throttle_messages",
    v.THROTTLE,
    None,
    frozenset({BINDING_GROUP, DOMAIN, GLOBAL}),
    "Cluster-wide message rate",
)
_opt(
    "cluster_scope_max_outbound_connections",
    v.integer(0),
    None,
    OUTBOUND | {HOST},
    "Cluster-wide scope connection cap",
)
_opt(
    "cluster_server_max_outbound_connections",
    v.integer(0),
    None,
    BINDING_SCOPES,
    "Cluster-wide connection cap",
)
_opt("connect_timeout", SECONDS, 300.0, OUTBOUND, "Connection timeout")
_opt(
    "connect_timeout_to_delay",
    SECONDS,
    900.0,
    OUTBOUND,
    "Unreachable for this long: move mail to the delayed queue",
)
_opt(
    "connection_allocation_aggressiveness",
    v.enum("normal", "high"),
    "normal",
    OUTBOUND,
    "How eagerly new connections open",
)
_opt("delay_dsn_max_retry_interval", SECONDS, 43200.0, OUTBOUND, "Maximum delay-DSN interval")
_opt("delay_dsn_retry_interval", SECONDS, 3600.0, OUTBOUND, "Base delay-DSN interval")
_opt("delayed_binding_domain_fuzz", SECONDS, 0.0, BINDING_SCOPES, "Spread of bulk requeues")
_opt(
    "delivery_method",
    m.DELIVERY_METHOD,
    ("ESMTP", "SMTP"),
    OUTBOUND,
    "Protocols used for delivery",
)
_opt("dkim", v.enum("enabled", "disabled"), None, OUTBOUND, "DKIM signing", "ignored")
_opt("domainkeys", v.enum("enabled", "disabled"), None, OUTBOUND, "DomainKeys signing", "ignored")
_opt(
    "drop_body_after_trans_fail",
    v.integer(0),
    3,
    OUTBOUND,
    "Transient failures before the body leaves memory",
)
_opt("ehlo_hostname", v.STRING, system_hostname, OUTBOUND, "EHLO name (default: host name)")
_opt("ehlo_timeout", SECONDS, 300.0, OUTBOUND, "Timeout for EHLO")
_opt(
    "enable_fbl_header_insertion",
    v.enum("enabled", "disabled"),
    None,
    OUTBOUND,
    "Insert the FBL header into outbound mail",
)
_opt(
    "fully_resolve_before_smtp",
    v.BOOLEAN,
    True,
    OUTBOUND,
    "Resolve all MX and A records before delivery",
)
_opt("gateway", v.HOST_PORT, None, OUTBOUND, "Static route: deliver to this host")
_opt("generate_bounces", v.BOOLEAN, True, OUTBOUND, "Send DSNs for failed mail")
_opt("generate_delay_dsn", v.BOOLEAN, False, OUTBOUND, "Send DSNs for delayed mail")
_opt("idle_timeout", SECONDS, 5.0, OUTBOUND, "How long idle outbound connections stay open")
_opt("mailerdaemon", v.STRING, None, OUTBOUND, "From: of DSNs (default MAILER-DAEMON@hostname)")
_opt("mailfrom_timeout", SECONDS, 300.0, OUTBOUND, "Timeout after MAIL FROM")
_opt(
    "max_deliveries_per_connection",
    v.integer(0),
    0,
    OUTBOUND,
    "Messages per connection (0 = unlimited)",
)
_opt(
    "max_outbound_connections",
    v.integer(-1),
    32,
    OUTBOUND | {HOST, PROVIDER},
    "Connections per binding x domain (host scope: per destination IP; provider: per binding"
    " x provider)",
)
_opt("max_recipients_per_batch", v.integer(1), 100, OUTBOUND, "Recipients per transaction")
_opt(
    "max_recipients_per_connection",
    v.integer(0),
    0,
    OUTBOUND | LISTENER,
    "Recipients per connection (0 = unlimited)",
)
_opt(
    "max_resident_active_queue", v.integer(0), 250, OUTBOUND, "Active-queue messages kept in memory"
)
_opt(
    "max_resident_active_queue_size",
    v.integer(0),
    250,
    OUTBOUND,
    "Older spelling of max_resident_active_queue",
    "ignored",
)
_opt("max_resident_messages", v.integer(0), 32768, BINDING_SCOPES, "Message bodies kept in memory")
_opt("max_retries", v.STRING, "auto", OUTBOUND, '"auto", "none" or a number of retries')
_opt("max_retry_interval", SECONDS, 43200.0, OUTBOUND, "Maximum retry interval")
_opt(
    "mdn_failures_notify", v.STRING, None, OUTBOUND, "Mailbox told of failures of null-sender mail"
)
_opt("message_expiration", SECONDS, 86400.0, OUTBOUND, "Time to live from reception")
_opt(
    "never_attempt_expired_messages",
    v.BOOLEAN,
    False,
    OUTBOUND,
    "Fail expired messages without an attempt",
)
_opt("never_retry", v.BOOLEAN, False, OUTBOUND, "Fail instead of retrying")
_opt(
    "outbound_throttle_connections",
    v.THROTTLE,
    None,
    OUTBOUND | {PROVIDER},
    "Connection rate, shared by the defining scope (provider: per binding x provider)",
)
_opt(
    "outbound_throttle_messages",
    v.THROTTLE,
    None,
    OUTBOUND | {PROVIDER},
    "Message rate, shared by the defining scope (provider: per binding x provider)",
)
_opt("rcptto_timeout", SECONDS, 300.0, OUTBOUND, "Timeout after RCPT TO")
_opt("remote_smtp_port", v.integer(1, 65535), 25, OUTBOUND, "Port for SMTP delivery")
_opt("response_transcode_pattern", v.REGEX, None, OUTBOUND, "Pattern matched on replies")
_opt("response_transcode_replace", v.STRING, None, OUTBOUND, "Replacement for matched replies")
_opt("retry_interval", SECONDS, 1200.0, OUTBOUND, "Base retry interval")
_opt("rset_timeout", SECONDS, 30.0, OUTBOUND, "Timeout after RSET")
_opt(
    "scope_max_outbound_connections",
    v.integer(0),
    None,
    OUTBOUND | {HOST},
    "Connections shared by every binding in the defining scope",
)
_opt(
    "send_8bitmime",
    v.enum("no", "ifavailable"),
    "no",
    OUTBOUND,
    "Use 8BITMIME when the server offers it",
)
_opt(
    "server_max_outbound_connections",
    v.integer(0),
    20000,
    BINDING_SCOPES,
    "Total outbound connections",
)
_opt(
    "server_reserve_outbound_connections",
    v.integer(0),
    200,
    frozenset({GLOBAL}),
    "Connections reserved for low-volume domains",
)
_opt("suspend_delivery", v.BOOLEAN, False, OUTBOUND, "Hold mail for this scope")
_opt("tls", v.enum("no", "ifavailable", "required"), "no", OUTBOUND, "STARTTLS for delivery")
_opt("tls_ca", v.STRING, None, OUTBOUND, "CA file for verifying servers")
_opt(
    "tls_certificate",
    v.STRING,
    None,
    OUTBOUND | LISTENER | TLS_EXTRA,
    "Certificate file (client or listener)",
)
_opt("tls_ciphers", v.STRING, None, OUTBOUND | LISTENER | TLS_EXTRA, "OpenSSL cipher list")
_opt(
    "tls_ifavailable_fallback",
    v.BOOLEAN,
    True,
    OUTBOUND,
    "Retry in plain text if opportunistic TLS fails",
)
_opt("tls_key", v.STRING, None, OUTBOUND | LISTENER | TLS_EXTRA, "Private key file")
_opt(
    "tls_protocols",
    v.STRING,
    None,
    OUTBOUND | LISTENER | (TLS_EXTRA - {"xmpp_listener"}),
    "Allowed TLS protocol versions",
)
_opt("tls_verify", v.enum("no", "ca", "host"), "no", OUTBOUND, "Certificate checking")
_opt(
    "transform_8bitmime_content",
    v.enum("no", "ifneeded", "strict", "strip"),
    "ifneeded",
    OUTBOUND,
    "8-bit downconversion when the server lacks 8BITMIME",
)
_opt(
    "xclient",
    v.enum("no", "ifavailable", "required"),
    "no",
    OUTBOUND,
    "Pass the client on (XCLIENT)",
)
# delivery_method = LMTP / HTTP (relay/config/methods.py)
_opt("lmtp_port", v.integer(1, 65535), 2003, OUTBOUND, "LMTP port")
_opt("http_basic_auth", m.HTTP_BASIC_AUTH, None, OUTBOUND, "HTTP delivery credentials")
_opt("http_host", m.HTTP_HOST, None, OUTBOUND, "HTTP delivery host")
_opt("http_method", m.HTTP_METHOD, "POST", OUTBOUND, "HTTP delivery method")
_opt("http_uri", m.HTTP_URI, "/", OUTBOUND, "HTTP delivery URI")
_opt("http_version", m.HTTP_VERSION, "1.1", OUTBOUND, "HTTP delivery version")
# outbound TLS policy: MTA-STS (RFC 8461), DANE (RFC 7672)
_opt("use_mta_sts", v.BOOLEAN, False, frozenset({DOMAIN, GLOBAL}), "Look up MTA-STS policies")
_opt("enable_mta_sts", v.BOOLEAN, True, OUTBOUND, "Apply the MTA-STS policy (with use_mta_sts)")
_opt("use_dane", v.BOOLEAN, False, frozenset({DOMAIN, GLOBAL}), "Look up DNSSEC-signed TLSA")
_opt("enable_dane", v.BOOLEAN, True, OUTBOUND, "Apply DANE verification (with use_dane)")

# --- accepted for compatibility, never acted on (other channels and modules) --------------
for _name, _type, _default, _description in (
    ("apn_expiry", v.STRING, "yes", "Apple push notification expiry"),
    ("ecstream_port", v.integer(1, 65535), 1825, "ECStream port"),
    ("ecstream_timeout", SECONDS, 600.0, "ECStream connect timeout"),
    ("exclude_vctx", v.STRING_LIST, None, "Validation context keys not journaled"),
    ("exclude_vctx_conn", v.STRING_LIST, None, "Connection context keys not journaled"),
    ("exclude_vctx_mess", v.STRING_LIST, None, "Message context keys not journaled"),
    ("gcm_application_id", v.STRING, None, "Android push application"),
    ("gcm_authorization_token_id", v.STRING, None, "Android push token"),
    ("gcm_delay_while_idle", v.BOOLEAN, False, "Android push delay"),
    ("gcm_dry_run", v.BOOLEAN, False, "Android push dry run"),
    ("gcm_ttl", v.integer(-1), -1, "Android push time to live"),
    ("opendkim_sign", v.BOOLEAN, True, "OpenDKIM signing"),
):
    _opt(_name, _type, _default, OUTBOUND, _description, "ignored")

# --- opendkim stanzas and their dkim_domain sub-stanzas (modules.opendkim.md) -----------
DK = frozenset({OPENDKIM, DKIM_DOMAIN})
DK_TOP = frozenset({OPENDKIM})
CANON = v.enum("simple", "relaxed")
_opt("header_canon", CANON, "simple", DK, "Header canonicalization: simple or relaxed")
_opt("body_canon", CANON, "simple", DK, "Body canonicalization: simple or relaxed")
_opt(
    "digest",
    v.enum("rsa-sha256", "ed25519-sha256"),
    "rsa-sha256",
    DK,
    "Signing algorithm: rsa-sha256, or ed25519-sha256 (RFC 8463)",
)
_opt("key", v.STRING, None, DK, "PEM private key file; %{d} = signing domain, %{s} = selector")
_opt("selector", v.STRING, None, DK, "DKIM selector (the key is at SELECTOR._domainkey.DOMAIN)")
_opt("base_domain", v.STRING, None, frozenset({DKIM_DOMAIN}), "Sign for this parent domain")
_opt("headerlist", v.STRING_LIST, None, DK_TOP, "Header fields signed (default: RFC 6376's)")
_opt("oversign_headerlist", v.STRING_LIST, None, DK_TOP, "Fields signed once more than present")
_opt("skip_headerlist", v.STRING_LIST, None, DK_TOP, "Fields never signed")
_opt("lifetime", v.number(0), 0.0, DK_TOP, "Signature lifetime in hours (x= tag; 0 = none)")
_opt(
    "sign_condition",
    v.enum("auth_user", "can_relay"),
    None,
    DK,
    "Sign only mail from authenticated sessions (auth_user) or relaying clients (can_relay)",
)
for _name, _type, _default in (
    ("body_length_limit", v.BOOLEAN, False),
    ("copy_headers", v.BOOLEAN, False),
    ("keycache_size", v.integer(0), 2048),
    ("key_cache_size", v.integer(0), 2048),
    ("neg_keycache_ttl", v.integer(0), 3600),
    ("pos_keycache_ttl", v.integer(0), 300),
    ("testing", v.BOOLEAN, False),
):
    _opt(_name, _type, _default, DK, "OpenDKIM tuning (relay loads every key at start)", "ignored")

# Options relay accepts but will not act on, and why (config check says so).
NOT_SUPPORTED = {
    "ecstream_": "ECStream is Momentum's proprietary protocol",
    "gcm_": "Google Cloud Messaging is a retired service",
    "apn_expiry": "Apple's binary push protocol is a retired service",
    "domainkeys": "DomainKeys (RFC 4870) is an obsolete standard, replaced by DKIM",
    "exclude_vctx": "validation contexts are Momentum internals",
}


def not_supported(name: str) -> str | None:
    """Why relay will never act on option `name`, or None."""
    for prefix, reason in NOT_SUPPORTED.items():
        if name.startswith(prefix):
            return reason
    return None


# --- global: the daemon ----------------------------------------------------------------
G = frozenset({GLOBAL})
_opt("hostname", v.HOST_NAME, system_hostname, G, "This host's name (greeting, Received, DSNs)")
_opt("spoolbase", v.STRING, "./var/spool", G, "Spool directory")
_opt(
    "event_log",
    v.STRING,
    "./var/log/events.jsonl",
    G,
    "JSON-lines event log: reception, delivery, deferral, bounce (relay extension)",
)
_opt(
    "dsn_binding_group",
    v.STRING,
    "default",
    G,
    "Binding group that carries relay's own DSNs and alerts (relay extension)",
)
_opt(
    "fbl_address",
    v.STRING,
    None,
    G,
    "Mail to this address is read as ARF feedback reports, not relayed (relay extension)",
)
_opt(
    "event_log_max_size",
    v.integer(0),
    0,
    G,
    "Rotate the event log past this many bytes (0: only on SIGUSR1; relay extension)",
)
_opt("event_log_keep", v.integer(1, 1000), 5, G, "Rotated event logs kept (NAME.1 ... NAME.N)")
_opt(
    "admin_listen",
    v.HOST_PORT,
    None,
    G,
    'Admin HTTP API and /metrics, e.g. "127.0.0.1:2580" (relay extension; unset = off)',
)
_opt(
    "admin_tls_certificate",
    v.STRING,
    None,
    G,
    "PEM certificate (chain) of the admin API: HTTPS (with admin_tls_key; relay extension)",
)
_opt("admin_tls_key", v.STRING, None, G, "PEM private key of the admin API's certificate")
_opt(
    "admin_token_file",
    v.STRING,
    None,
    G,
    "Admin API bearer tokens, NAME:SCOPE:TOKEN lines, scope read|inject|admin (relay extension)",
)
_opt(
    "metrics_require_token",
    v.BOOLEAN,
    False,
    G,
    "/metrics needs a read token too (relay extension; /healthz stays open)",
)
_opt(
    "suppression_enabled",
    v.BOOLEAN,
    True,
    G,
    "Keep a suppression list: hard bounces and complaints refused at injection (relay ext.)",
)
_opt(
    "suppression_action",
    v.enum("reject", "drop"),
    "reject",
    G,
    "Suppressed recipients: reject (550 5.7.1) or drop (accept, an event; relay extension)",
)
_opt(
    "injection_workers",
    v.integer(0, 64),
    0,
    G,
    "SMTP injection in this many worker processes (0: in the daemon's own process)",
)
_opt("spool_mode", v.STRING, "0640", G, "Mode of spool files")
_opt("force_fsync", v.BOOLEAN, True, G, "fsync spool writes before answering 250")
_opt("resolv_conf", v.STRING, "/etc/resolv.conf", G, "Resolver configuration for MX lookups")
_opt(
    "dns_port",
    v.integer(1, 65535),
    53,
    G,
    "Port of the resolv_conf nameservers (relay extension, for test setups)",
)
_opt(
    "shutdown_timeout",
    SECONDS,
    30.0,
    G,
    "On SIGTERM, how long in-flight sessions may finish (relay extension)",
)
_opt(
    "mta_sts_policy_store",
    v.STRING,
    None,
    G,
    "Directory of the MTA-STS policy cache (default: SPOOLBASE/mtasts)",
)
_opt(
    "mta_sts_https_port",
    v.integer(1, 65535),
    443,
    G,
    "Port of the mta-sts.DOMAIN policy hosts (relay extension, for test setups and proxies)",
)
_opt(
    "tls_reporting",
    v.BOOLEAN,
    False,
    G,
    "Send daily RFC 8460 TLS reports to the rua of _smtp._tls (relay extension)",
)
_opt("tls_report_organization", v.STRING, None, G, "organization-name of TLS reports")
_opt("tls_report_contact", v.STRING, None, G, "contact-info of TLS reports")
_opt("dns_fallback_to_tcp", v.BOOLEAN, False, G, "Retry truncated DNS answers over TCP")
_opt("mx_failures_fallback_to_a", v.integer(0), None, G, "MX failures before trying A")
_opt("host_failure_retry", SECONDS, 120.0, G, "Wait before retrying a failed host")
_opt("bounce_behavior", v.enum("pass", "blackhole"), "pass", OUTBOUND, "Bounce handling")

# --- injection listeners (esmtp_listener, listen, peer) ----------------------------------
LG = LISTENER | G
_opt(
    "relay_hosts",
    v.NETWORKS,
    (),
    LG | {"pathway", "pathway_group"},
    "Clients allowed to relay without authentication",
)
_opt("max_message_size", v.integer(0), 0, LG, "Largest message accepted (0 = unlimited)")
_opt(
    "max_recipients_per_message",
    v.integer(1),
    100,
    LG,
    "Recipients accepted per message; more get 452 (relay extension)",
)
_opt(
    "binding_group",
    v.STRING,
    None,
    LISTENER,
    "Binding group for mail injected here (relay extension)",
)
_opt("binding", v.STRING, None, LISTENER, "Binding for mail injected here (relay extension)")
_opt(
    "tenant",
    v.STRING,
    None,
    LISTENER,
    "Tenant of mail injected here without X-Tenant (relay extension)",
)
_opt(
    "campaign",
    v.STRING,
    None,
    LISTENER,
    "Campaign of mail injected here without X-Campaign (relay extension)",
)
_opt(
    "auth_credentials_file",
    v.STRING,
    None,
    LG,
    "user:hash lines for SMTP AUTH over TLS (relay extension)",
)
_opt("max_connections", v.integer(0), 1000, LG, "Concurrent sessions per listener (0 = unlimited)")
_opt(
    "max_connections_per_ip",
    v.integer(0),
    100,
    LG,
    "Concurrent sessions per client address (0 = unlimited)",
)
_opt(
    "reuse_port",
    v.BOOLEAN,
    False,
    frozenset({ESMTP_LISTENER, LISTEN}),
    "SO_REUSEPORT: several nodes on one host share this address (relay extension)",
)
_opt(
    "inbound_idle_timeout",
    v.POSITIVE_DURATION,
    300.0,
    LG,
    "Idle time allowed between client commands",
)
_opt(
    "inbound_data_timeout", v.POSITIVE_DURATION, 600.0, LG, "Time allowed for a whole DATA transfer"
)
_opt(
    "normalize_bare_line_endings",
    v.BOOLEAN,
    False,
    LG,
    "Rewrite bare CR/LF in DATA to CRLF instead of refusing with 550 5.5.2",
)
_opt("listen_backlog", v.integer(1), 500, frozenset({LISTEN}), "Listen backlog")
_opt("enable", v.BOOLEAN, True, frozenset({LISTEN}), "Listen on this address")
for _name in (
    "tcp_recv_buffer_size",
    "tcp_send_buffer_size",
    "accept_queue_backlog",
    "events_per_iter",
    "concurrency",
):
    _opt(_name, v.integer(0), None, frozenset({LISTEN}), "Listener tuning", "ignored")
_opt("disable_nagle_algorithm", v.BOOLEAN, False, frozenset({LISTEN}), "Listener tuning", "ignored")
_opt("pool_name", v.STRING, None, frozenset({LISTEN}), "Listener thread pool", "ignored")

# --- adaptive_sweep_rule scope -----------------------------------------------------------
R = frozenset({SWEEP_RULE})
_opt("codes", v.STRING_LIST, None, R, 'Classes the rule counts: ("bc:10" "fbl:abuse")')
_opt("low_threshold", v.number(0), None, R, "Rate (%) that triggers low_action")
_opt("low_action", v.ACTION, ("throttle", "down"), R, "Action at the low threshold")
_opt("high_threshold", v.number(0), None, R, "Rate (%) that triggers high_action")
_opt("high_action", v.ACTION, ("suspend", "4 hours"), R, "Action at the high threshold")

# A webhook "name" { ... } stanza (relay extension): the event log's records, POSTed.
W = frozenset({WEBHOOK})
_opt("url", v.STRING, None, W, "Where a webhook POSTs (http:// or https://)")
_opt("events", v.STRING_LIST, (), W, "The event kinds a webhook sends (empty: every kind)")
_opt("batch_size", v.integer(1, 10000), 100, W, "Events per POST at most")
_opt("max_delay", SECONDS, 1.0, W, "A webhook POSTs what it has after this long")
_opt("secret_file", v.STRING, None, W, "HMAC-SHA256 key of the X-Relay-Signature header")

# A provider "name" { ... } stanza (relay extension): destinations grouped by their MX hosts.
PV = frozenset({PROVIDER})
_opt(
    "match_mx",
    v.STRING_LIST,
    (),
    PV,
    'MX host patterns ("*.google.com"); a domain whose MX hosts all match is in the provider',
)
_opt(
    "match_domain",
    v.STRING_LIST,
    (),
    PV,
    'Domain patterns ("gmail.com" "*.gmail.com"): in the provider without an MX lookup',
)
_opt(
    "adaptive_provider_rollup",
    v.BOOLEAN,
    False,
    PV,
    "Adaptive decisions per binding x provider instead of per binding x domain",
)

# A tenant "name" { ... } stanza (relay extension): its share of each binding x domain.
TN = frozenset({TENANT})
_opt("weight", v.integer(1), 1, TN, "The tenant's share of connections (deficit round robin)")
_opt(
    "priority_class",
    v.enum("transactional", "bulk"),
    "bulk",
    TN | LISTENER,
    "Class of the tenant's (listener's, peer's) mail without X-Priority-Class",
)
_opt(
    "bulk_min_share",
    v.number(0),
    0.1,
    frozenset({GLOBAL}),
    "Share of dispatches bulk keeps while transactional mail waits (0..1)",
)

# IP warm-up (relay extension): a binding's (or binding x domain's) daily or hourly caps.
_opt(
    "warmup_schedule",
    v.WARMUP_SCHEDULE,
    None,
    OUTBOUND | PV,
    'Caps on day 1, 2, ... after warmup_start ("50/day" or "N/hour"); none past the list',
)
_opt("warmup_start", v.DATE, None, OUTBOUND | PV, "The UTC day a warm-up schedule starts")

# What relay acts on today; every other option set in a config draws a `config check` warning.
ACTIVE = frozenset(
    {
        "url",
        "events",
        "batch_size",
        "max_delay",
        "secret_file",
        "match_mx",
        "match_domain",
        "adaptive_provider_rollup",
        "warmup_schedule",
        "warmup_start",
        "weight",
        "priority_class",
        "bulk_min_share",
        "admin_tls_certificate",
        "admin_tls_key",
        "use_mta_sts",
        "enable_mta_sts",
        "use_dane",
        "enable_dane",
        "mta_sts_policy_store",
        "mta_sts_https_port",
        "tls_reporting",
        "tls_report_organization",
        "tls_report_contact",
        "event_log_keep",
        "event_log_max_size",
        "admin_token_file",
        "metrics_require_token",
        "suppression_action",
        "suppression_enabled",
        # adaptive delivery (adaptive_scope = global and FBL volume rules wait for later work)
        "adaptive_adjustment_interval",
        "adaptive_alert_email_destination",
        "adaptive_alert_email_sender",
        "adaptive_attempt_threshold",
        "adaptive_body_timeout",
        "adaptive_default_suspension",
        "adaptive_default_suspension_enabled",
        "adaptive_ehlo_timeout",
        "adaptive_enabled",
        "adaptive_fbl_volume_threshold",
        "adaptive_idle_timeout",
        "adaptive_mailfrom_timeout",
        "adaptive_max_deliveries_per_connection",
        "adaptive_max_outbound_connections",
        "adaptive_max_recipients_per_batch",
        "adaptive_max_recipients_per_connection",
        "adaptive_max_resident_active_queue",
        "adaptive_max_retries",
        "adaptive_max_retry_interval",
        "adaptive_notification_events",
        "adaptive_notification_interval",
        "adaptive_outbound_throttle_messages",
        "adaptive_positive_adjustment_interval",
        "adaptive_rcptto_timeout",
        "adaptive_rejection_rate_suspension_percentage",
        "adaptive_retry_fuzz",
        "adaptive_retry_interval",
        "adaptive_rset_timeout",
        "adaptive_sweep_rule_enabled",
        "codes",
        "high_action",
        "high_threshold",
        "low_action",
        "low_threshold",
        "pattern",
        "threshold",
        "action",
        "options",
        "replies",
        "enabled",
        # DKIM signing (opendkim stanzas)
        "base_domain",
        "body_canon",
        "digest",
        "dkim",
        "header_canon",
        "headerlist",
        "key",
        "lifetime",
        "opendkim_sign",
        "oversign_headerlist",
        "selector",
        "sign_condition",
        "skip_headerlist",
        # delivery
        "bind_address",
        "binding_weight",
        "blackhole",
        "body_timeout",
        "bounces_inline_original",
        "connect_timeout",
        "connect_timeout_to_delay",
        "connection_allocation_aggressiveness",
        "delay_dsn_max_retry_interval",
        "delay_dsn_retry_interval",
        "delivery_method",
        "http_basic_auth",
        "http_host",
        "http_method",
        "http_uri",
        "http_version",
        "lmtp_port",
        "xclient",
        "drop_body_after_trans_fail",
        "ehlo_hostname",
        "ehlo_timeout",
        "fully_resolve_before_smtp",
        "gateway",
        "generate_bounces",
        "generate_delay_dsn",
        "idle_timeout",
        "mailerdaemon",
        "mailfrom_timeout",
        "max_deliveries_per_connection",
        "max_outbound_connections",
        "max_recipients_per_batch",
        "max_recipients_per_connection",
        "max_resident_active_queue",
        "max_resident_messages",
        "max_retries",
        "max_retry_interval",
        "mdn_failures_notify",
        "message_expiration",
        "never_attempt_expired_messages",
        "never_retry",
        "outbound_throttle_connections",
        "outbound_throttle_messages",
        "rcptto_timeout",
        "remote_smtp_port",
        "response_transcode_pattern",
        "response_transcode_replace",
        "retry_interval",
        "rset_timeout",
        "scope_max_outbound_connections",
        "send_8bitmime",
        "server_max_outbound_connections",
        "suspend_delivery",
        "tls",
        "tls_ca",
        "tls_certificate",
        "tls_ciphers",
        "tls_ifavailable_fallback",
        "tls_key",
        "tls_protocols",
        "tls_verify",
        "transform_8bitmime_content",
        # the daemon
        "admin_listen",
        "dns_port",
        "enable_fbl_header_insertion",
        "fbl_address",
        "injection_workers",
        "dsn_binding_group",
        "event_log",
        "force_fsync",
        "hostname",
        "mx_failures_fallback_to_a",
        "resolv_conf",
        "shutdown_timeout",
        "spoolbase",
        # injection
        "auth_credentials_file",
        "binding",
        "binding_group",
        "campaign",
        "tenant",
        "enable",
        "inbound_data_timeout",
        "inbound_idle_timeout",
        "max_connections",
        "max_connections_per_ip",
        "max_message_size",
        "max_recipients_per_message",
        "normalize_bare_line_endings",
        "relay_hosts",
        "reuse_port",
        # cluster
        "cluster_outbound_throttle_connections",
        "cluster_outbound_throttle_messages",
        "cluster_scope_max_outbound_connections",
        "cluster_server_max_outbound_connections",
        "heartbeat_interval",
        "key_prefix",
        "lease_period",
        "node_name",
        "redis_password_file",
        "redis_timeout",
        "redis_url",
    }
)

# --- cluster (relay extension): nodes sharing limits through Redis ----------------------
CL = frozenset({CLUSTER})
_opt("redis_url", v.STRING, None, CL, 'Redis to share limits through: "redis://host:port/db"')
_opt("redis_password_file", v.STRING, None, CL, "File holding the Redis password")
_opt("node_name", v.STRING, None, CL, "This node's name (default: hostname:spoolbase)")
_opt("key_prefix", v.STRING, "relay:", CL, "Prefix of every Redis key relay writes")
_opt("redis_timeout", SECONDS, 0.5, CL, "Timeout of each Redis command")
_opt("lease_period", SECONDS, 10.0, CL, "A dead node's connection leases free after this")
_opt("heartbeat_interval", SECONDS, 1.0, CL, "How often a node says it is alive")

# --- adaptive_reply_rule scope (relay extension): act on what receivers say in words -----
RR = frozenset({REPLY_RULE})
_opt("pattern", v.REGEX, None, RR, "Regular expression matched on the reply text")
_opt("threshold", v.THROTTLE, None, RR, '"N/seconds": that many matching replies act')
_opt("action", v.ACTION, None, RR, '("throttle" "down"), ("suspend" "1 hour"), ...')
_opt("options", v.STRING_LIST, None, RR, "What a throttle action moves (default: the family)")
_opt("replies", v.enum("4xx", "5xx", "any"), "any", RR, "Which failure replies count")
_opt("enabled", v.BOOLEAN, True, RR, "Whether the rule applies")
_opt(
    "scope",
    v.enum("binding", "tenant", "campaign", "tenant_binding", "tenant_provider"),
    "binding",
    RR,
    "What a suspend acts on: the binding x domain, or the message's tenant x domain, campaign"
    " x domain, tenant x binding x domain, or tenant x provider",
    "active",
)

OPTIONS: dict[str, Option] = {
    option.name: replace(option, status="active") if option.name in ACTIVE else option
    for option in _OPTIONS
}
assert OPTIONS.keys() >= ACTIVE, ACTIVE - OPTIONS.keys()

STANZAS: dict[str, StanzaKind] = {
    s.name: s
    for s in (
        StanzaKind(BINDING_GROUP, True, frozenset({GLOBAL}), "a pool of bindings"),
        StanzaKind(BINDING, True, frozenset({GLOBAL, BINDING_GROUP}), "one source address"),
        StanzaKind(
            DOMAIN,
            True,
            frozenset({GLOBAL, BINDING_GROUP, BINDING}),
            "options for a destination domain or /regex/",
        ),
        StanzaKind(
            HOST,
            True,
            frozenset({GLOBAL, BINDING_GROUP, BINDING}),
            "options for a destination host",
        ),
        StanzaKind(ESMTP_LISTENER, False, frozenset({GLOBAL}), "SMTP injection"),
        StanzaKind(LISTEN, True, frozenset({ESMTP_LISTENER}), "one listening address"),
        StanzaKind(
            PEER, True, frozenset({ESMTP_LISTENER, LISTEN}), "options for clients in a CIDR block"
        ),
        StanzaKind(SWEEP_RULE, True, OUTBOUND, "adaptive thresholds and actions"),
        StanzaKind(REPLY_RULE, True, OUTBOUND, "adaptive action on matching reply texts"),
        StanzaKind(WEBHOOK, True, frozenset({GLOBAL}), "POST event log records to a URL"),
        StanzaKind(OPENDKIM, True, frozenset({GLOBAL}), "DKIM signing: one signature"),
        StanzaKind(DKIM_DOMAIN, True, frozenset({OPENDKIM}), "DKIM settings for a From: domain"),
        StanzaKind(CLUSTER, False, frozenset({GLOBAL}), "nodes sharing limits through Redis"),
        StanzaKind(
            DANE_MODULE, False, frozenset({GLOBAL}), "the DANE module (use_dane turns DANE on)"
        ),
        StanzaKind(
            PROVIDER, True, frozenset({GLOBAL}), "destinations grouped by MX hosts, with limits"
        ),
        StanzaKind(TENANT, True, frozenset({GLOBAL}), "a sender's share and priority class"),
    )
}


def lookup(name: str) -> Option | None:
    return OPTIONS.get(name.lower())
