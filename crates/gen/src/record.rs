//! Generation of single CloudTrail records.

use rand::Rng;

use crate::catalog::{self, Category, Ev, EventType, Spec};
use crate::json::{push_padded, push_u64, Json};
use crate::time::{Utc, MAX_MS};

/// Where and when a record happens, and how big it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordContext {
    /// 12-digit account id; becomes `recipientAccountId` and most ARNs.
    pub account_id: String,
    /// `awsRegion`. Global-service events (IAM, Organizations) are only
    /// produced when this is `us-east-1`, as in real trails.
    pub region: String,
    /// Organization id (`o-...`), used in policy conditions.
    pub org_id: String,
    /// Event time in Unix milliseconds; clamped to years 1970..=9999.
    pub event_time_ms: i64,
    pub size: RecordSize,
}

impl Default for RecordContext {
    fn default() -> Self {
        RecordContext {
            account_id: "123456789012".to_owned(),
            region: "us-east-1".to_owned(),
            org_id: "o-a1b2c3d4e5".to_owned(),
            event_time_ms: crate::DEFAULT_START_TIME_MS,
            size: RecordSize::Natural,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordSize {
    /// A record from the realistic mix; always well under 10 KB.
    Natural,
    /// A record padded through its request parameters (instance-id lists,
    /// policy documents, tag sets) until it is at least this many bytes.
    /// Overshoot is bounded by the tail fields, typically under 2 KB.
    AtLeast(usize),
}

/// Inclusive lower bound of the "large record" size range.
pub const LARGE_MIN_BYTES: usize = 10 * 1024;
/// Upper bound of the target size for large records (the record itself may
/// overshoot it slightly, see [`RecordSize::AtLeast`]).
pub const LARGE_MAX_BYTES: usize = 200 * 1024;

/// Picks a large-record target. Piecewise-uniform instead of log-uniform
/// because `f64::ln`/`exp` come from the platform libm and may differ in the
/// last bit between machines, which would break byte-identical output.
pub(crate) fn large_target<R: Rng + ?Sized>(rng: &mut R) -> usize {
    let (lo, hi) = match rng.gen_range(0u32..10) {
        0..=4 => (LARGE_MIN_BYTES, 30 * 1024),
        5..=7 => (30 * 1024, 80 * 1024),
        _ => (80 * 1024, LARGE_MAX_BYTES),
    };
    lo + rng.gen_range(0..(hi - lo) as u32) as usize
}

/// Appends one compact JSON record (no trailing separator) to `j`.
pub(crate) fn write_record<R: Rng + ?Sized>(j: &mut Json, rng: &mut R, ctx: &RecordContext) {
    let start = j.buf.len();
    let until = match ctx.size {
        RecordSize::Natural => None,
        RecordSize::AtLeast(n) => Some(start + n),
    };
    let mut g = Gen {
        j,
        rng,
        ctx,
        until,
        time_ms: ctx.event_time_ms.clamp(0, MAX_MS),
    };
    g.record();
    debug_assert!(g.j.is_balanced());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdKind {
    Root,
    IamUser,
    AssumedRole,
    Role,
    FederatedUser,
    Directory,
    AwsAccount,
    AwsService,
    Unknown,
    SamlUser,
    WebIdentityUser,
    IdentityCenterUser,
}

/// Relative frequencies. Rare types still get ~2% so a few thousand events
/// contain dozens of each, which the tests and downstream filters rely on.
const ID_KINDS: &[(IdKind, u32)] = &[
    (IdKind::AssumedRole, 50),
    (IdKind::IamUser, 15),
    (IdKind::AwsService, 10),
    (IdKind::Root, 3),
    (IdKind::Role, 2),
    (IdKind::FederatedUser, 3),
    (IdKind::SamlUser, 3),
    (IdKind::WebIdentityUser, 3),
    (IdKind::AwsAccount, 3),
    (IdKind::Unknown, 2),
    (IdKind::Directory, 2),
    (IdKind::IdentityCenterUser, 2),
];

struct Actor {
    kind: IdKind,
    /// Principal ARN for error messages; empty when the type has none.
    arn: String,
    /// Service principal for `AWSService` callers and service events.
    service: &'static str,
    console: bool,
}

/// Event-specific trailing parts decided while writing the request.
#[derive(Default)]
struct Extra {
    additional: Additional,
    resources: Vec<Res>,
    shared_event_id: bool,
    vpc_endpoint: bool,
}

#[derive(Default)]
enum Additional {
    #[default]
    None,
    S3 {
        bytes_in: u64,
        bytes_out: u64,
    },
    Console {
        mfa: bool,
    },
    Lambda {
        function_arn: String,
    },
    Kms,
}

struct Res {
    ty: &'static str,
    arn: String,
    account: Option<String>,
}

const HEX: &[u8] = b"0123456789abcdef";
const HEX_UPPER: &[u8] = b"0123456789ABCDEF";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const MIXED_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DIGITS: &[u8] = b"0123456789";

/// FNV-1a; gives entities (users, roles) stable ids across records so that
/// grouping by principalId behaves like on real data.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn push_stable(buf: &mut Vec<u8>, charset: &[u8], n: usize, parts: &[&str]) {
    let mut h = stable_hash(parts);
    for _ in 0..n {
        // splitmix64 step: cheap, well-mixed stream from the hash.
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        buf.push(charset[(z % charset.len() as u64) as usize]);
    }
}

/// `Nov 1, 2026 12:00:07 AM` (IAM) or `Nov 1, 2026, 12:00:07 AM` (STS, KMS):
/// the human-readable dates those services put in responseElements.
fn push_human_time(buf: &mut Vec<u8>, ms: i64, comma_after_year: bool) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = Utc::from_ms(ms.clamp(0, MAX_MS));
    buf.extend_from_slice(MONTHS[(t.month as usize).saturating_sub(1) % 12].as_bytes());
    buf.push(b' ');
    push_u64(buf, u64::from(t.day));
    buf.extend_from_slice(b", ");
    push_padded(buf, t.year as u64, 4);
    if comma_after_year {
        buf.push(b',');
    }
    buf.push(b' ');
    let h12 = match t.hour % 12 {
        0 => 12,
        h => h,
    };
    push_u64(buf, u64::from(h12));
    buf.push(b':');
    push_padded(buf, u64::from(t.minute), 2);
    buf.push(b':');
    push_padded(buf, u64::from(t.second), 2);
    buf.extend_from_slice(if t.hour < 12 { b" AM" } else { b" PM" });
}

struct Gen<'a, R: Rng + ?Sized> {
    j: &'a mut Json,
    rng: &'a mut R,
    ctx: &'a RecordContext,
    /// Absolute `j.buf` length a padded record must reach.
    until: Option<usize>,
    time_ms: i64,
}

impl<R: Rng + ?Sized> Gen<'_, R> {
    // ---- randomness ---------------------------------------------------

    fn below(&mut self, n: u32) -> u32 {
        self.rng.gen_range(0..n)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen::<f64>() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        self.rng.gen_range(lo..=hi_inclusive)
    }

    fn push_rand(&mut self, charset: &[u8], n: usize) {
        for _ in 0..n {
            let c = charset[self.rng.gen_range(0..charset.len() as u32) as usize];
            self.j.buf.push(c);
        }
    }

    fn rand_string(&mut self, prefix: &str, charset: &[u8], n: usize) -> String {
        let mut s = String::with_capacity(prefix.len() + n);
        s.push_str(prefix);
        for _ in 0..n {
            s.push(char::from(
                charset[self.rng.gen_range(0..charset.len() as u32) as usize],
            ));
        }
        s
    }

    // ---- value helpers ------------------------------------------------

    fn id_str(&mut self, prefix: &str, charset: &[u8], n: usize) {
        self.j.begin_str();
        self.j.part(prefix);
        self.push_rand(charset, n);
        self.j.end_str();
    }

    fn kv_id(&mut self, k: &str, prefix: &str, charset: &[u8], n: usize) {
        self.j.key(k);
        self.id_str(prefix, charset, n);
    }

    fn push_uuid(&mut self) {
        let mut b = [0u8; 16];
        self.rng.fill(&mut b);
        // Version 4, RFC 4122 variant, so consumers validating UUIDs accept it.
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                self.j.buf.push(b'-');
            }
            self.j.buf.push(HEX[usize::from(byte >> 4)]);
            self.j.buf.push(HEX[usize::from(byte & 0xf)]);
        }
    }

    fn uuid_str(&mut self) {
        self.j.begin_str();
        self.push_uuid();
        self.j.end_str();
    }

    fn kv_uuid(&mut self, k: &str) {
        self.j.key(k);
        self.uuid_str();
    }

    fn time_str(&mut self, ms: i64) {
        self.j.begin_str();
        Utc::from_ms(ms.clamp(0, MAX_MS)).push_iso(&mut self.j.buf);
        self.j.end_str();
    }

    fn kv_human_time(&mut self, k: &str, ms: i64, comma: bool) {
        self.j.key(k);
        self.j.begin_str();
        push_human_time(&mut self.j.buf, ms, comma);
        self.j.end_str();
    }

    fn account(&self) -> &str {
        &self.ctx.account_id
    }

    fn region(&self) -> &str {
        &self.ctx.region
    }

    fn kv_account(&mut self, k: &str) {
        self.j.key(k);
        self.j.str(&self.ctx.account_id);
    }

    fn obj(&mut self, f: impl FnOnce(&mut Self)) {
        self.j.begin_obj();
        f(self);
        self.j.end_obj();
    }

    fn arr(&mut self, f: impl FnOnce(&mut Self)) {
        self.j.begin_arr();
        f(self);
        self.j.end_arr();
    }

    fn key_obj(&mut self, k: &str, f: impl FnOnce(&mut Self)) {
        self.j.key(k);
        self.obj(f);
    }

    fn key_arr(&mut self, k: &str, f: impl FnOnce(&mut Self)) {
        self.j.key(k);
        self.arr(f);
    }

    fn empty_obj(&mut self, k: &str) {
        self.j.key(k);
        self.j.begin_obj();
        self.j.end_obj();
    }

    /// Whether a list should get another item: a small natural count, or
    /// until the padding target is reached (always at least one item).
    fn more(&self, i: u32, natural: u32) -> bool {
        match self.until {
            Some(t) => i == 0 || self.j.buf.len() < t,
            None => i < natural,
        }
    }

    fn exotic(&mut self) -> bool {
        self.chance(0.03)
    }

    fn tag_value(&mut self) -> &'static str {
        if self.exotic() {
            self.pick(catalog::EXOTIC_TAGS)
        } else {
            self.pick(catalog::PLAIN_TAGS)
        }
    }

    fn bucket(&mut self) -> String {
        let base = self.pick(catalog::BUCKETS);
        format!("acme-{base}-{}", self.ctx.account_id)
    }

    fn object_key(&mut self) -> String {
        if self.chance(0.02) {
            return self.pick(catalog::EXOTIC_KEYS).to_owned();
        }
        let t = Utc::from_ms(self.time_ms);
        match self.below(4) {
            0 => {
                let part = self.below(200);
                let h = self.rand_string("", HEX, 8);
                format!(
                    "raw/{:04}/{:02}/{:02}/part-{part:05}-{h}.snappy.parquet",
                    t.year, t.month, t.day
                )
            }
            1 => {
                let h = self.rand_string("", HEX, 16);
                format!(
                    "logs/app/{:04}-{:02}-{:02}/{h}.log.gz",
                    t.year, t.month, t.day
                )
            }
            2 => {
                let h = self.rand_string("", HEX, 32);
                format!("images/{}/{h}.jpg", &h[..2])
            }
            _ => {
                let n = self.below(10_000);
                format!("exports/report-{n}.csv")
            }
        }
    }

    fn instance_id(&mut self) -> String {
        self.rand_string("i-0", HEX, 16)
    }

    fn role_arn(&self, account: &str, role: &str) -> String {
        if role.starts_with("AWSReservedSSO_") {
            format!("arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}")
        } else {
            format!("arn:aws:iam::{account}:role/{role}")
        }
    }

    fn kms_key_arn(&mut self) -> String {
        let mut s = format!("arn:aws:kms:{}:{}:key/", self.region(), self.account());
        let start = self.j.buf.len();
        self.push_uuid();
        s.push_str(std::str::from_utf8(&self.j.buf[start..]).unwrap_or_default());
        self.j.buf.truncate(start);
        s
    }

    fn ip(&mut self) {
        self.j.begin_str();
        if self.chance(0.05) {
            self.j.part("2600:1f18:");
            self.push_rand(HEX, 4);
            self.j.part(":");
            self.push_rand(HEX, 4);
            self.j.part("::");
            self.push_rand(HEX, 3);
        } else {
            const FIRST: &[u64] = &[3, 18, 34, 35, 44, 52, 54, 63, 72, 98, 100, 203];
            let a = self.pick(FIRST);
            self.j.part_u64(a);
            for _ in 0..3 {
                self.j.buf.push(b'.');
                let o = self.range(1, 254);
                self.j.part_u64(o);
            }
        }
        self.j.end_str();
    }

    fn s3_host(&mut self, bucket: &str) {
        self.j.key("Host");
        self.j.begin_str();
        self.j.part(bucket);
        self.j.part(".s3.");
        self.j.part(&self.ctx.region);
        self.j.part(".amazonaws.com");
        self.j.end_str();
    }

    // ---- record -------------------------------------------------------

    fn choose_kind(&mut self) -> IdKind {
        let total: u32 = ID_KINDS.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for &(k, w) in ID_KINDS {
            if x < w {
                return k;
            }
            x -= w;
        }
        IdKind::AssumedRole
    }

    fn choose_event(&mut self, kind: IdKind) -> &'static Spec {
        let us_east_1 = self.ctx.region == "us-east-1";
        if self.until.is_some() {
            let list = if us_east_1 {
                catalog::LARGE_GLOBAL
            } else {
                catalog::LARGE_REGIONAL
            };
            return catalog::spec(self.pick(list));
        }
        match kind {
            IdKind::SamlUser => catalog::spec(Ev::StsAssumeRoleWithSaml),
            IdKind::WebIdentityUser => catalog::spec(Ev::StsAssumeRoleWithWebIdentity),
            IdKind::AwsService => {
                if self.chance(0.25) {
                    catalog::spec(self.pick(catalog::SERVICE_EVENTS))
                } else {
                    catalog::spec(self.pick(catalog::SERVICE_CALLS))
                }
            }
            _ => {
                let t = catalog::tables();
                let (cum, specs) = if us_east_1 { &t.us_east_1 } else { &t.regional };
                let total = cum.last().copied().unwrap_or(1);
                let x = self.below(total);
                let i = cum.partition_point(|&c| c <= x);
                specs.get(i).copied().unwrap_or(&catalog::EVENTS[0])
            }
        }
    }

    fn record(&mut self) {
        let mut kind = self.choose_kind();
        if self.until.is_some()
            && matches!(
                kind,
                IdKind::SamlUser | IdKind::WebIdentityUser | IdKind::AwsService
            )
        {
            kind = IdKind::AssumedRole;
        }
        let spec = self.choose_event(kind);
        let sign_in = spec.event_type == EventType::ConsoleSignIn;
        let service_event = spec.event_type == EventType::ServiceEvent;
        if sign_in && !matches!(kind, IdKind::Root | IdKind::IamUser | IdKind::AssumedRole) {
            kind = IdKind::IamUser;
        }
        let login_failed = sign_in && self.chance(0.1);
        let console = sign_in
            || (spec.category == Category::Management
                && matches!(
                    kind,
                    IdKind::Root | IdKind::IamUser | IdKind::AssumedRole | IdKind::FederatedUser
                )
                && self.chance(0.08));

        self.j.begin_obj();
        self.j.kv_str("eventVersion", spec.version);
        self.j.key("userIdentity");
        let actor = self.identity(kind, spec, console, login_failed);
        self.j.key("eventTime");
        self.time_str(self.time_ms);
        self.j.kv_str("eventSource", spec.source);
        self.j.kv_str("eventName", spec.name);
        self.j.key("awsRegion");
        self.j.str(&self.ctx.region);

        self.j.key("sourceIPAddress");
        if service_event {
            self.j.str(spec.source);
        } else if actor.kind == IdKind::AwsService {
            if self.chance(0.2) {
                self.j.str("AWS Internal");
            } else {
                self.j.str(actor.service);
            }
        } else {
            self.ip();
        }

        self.j.key("userAgent");
        if service_event {
            self.j.str(spec.source);
        } else if actor.kind == IdKind::AwsService {
            self.j.str(actor.service);
        } else if actor.console {
            if !sign_in && self.chance(0.5) {
                let ua = self.pick(&["AWS Internal", "console.amazonaws.com"]);
                self.j.str(ua);
            } else {
                let ua = self.pick(catalog::BROWSER_AGENTS);
                self.j.str(ua);
            }
        } else if self.exotic() {
            let ua = self.pick(catalog::EXOTIC_AGENTS_ESCAPED);
            self.j.str_raw(ua);
        } else {
            let ua = self.pick(catalog::USER_AGENTS);
            self.j.str(ua);
        }

        let error = !sign_in && !service_event && self.chance(0.05);
        if error {
            self.error_fields(spec, &actor);
        }
        if login_failed {
            self.j.kv_str("errorMessage", "Failed authentication");
        }

        let extra = self.body(spec, error, login_failed, &actor);

        match extra.additional {
            Additional::None => {}
            Additional::S3 {
                bytes_in,
                bytes_out,
            } => self.key_obj("additionalEventData", |g| {
                g.j.kv_str("SignatureVersion", "SigV4");
                g.j.kv_str("CipherSuite", "TLS_AES_128_GCM_SHA256");
                g.j.kv_u64("bytesTransferredIn", bytes_in);
                g.j.kv_str("AuthenticationMethod", "AuthHeader");
                g.kv_id("x-amz-id-2", "", B64, 76);
                g.j.kv_u64("bytesTransferredOut", bytes_out);
            }),
            Additional::Console { mfa } => self.key_obj("additionalEventData", |g| {
                g.j.key("LoginTo");
                g.j.begin_str();
                g.j.part("https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB_");
                g.j.part(&g.ctx.region);
                g.j.part("_");
                g.push_rand(HEX, 16);
                g.j.end_str();
                g.j.kv_str("MobileVersion", "No");
                if mfa {
                    g.j.key("MFAIdentifier");
                    g.j.begin_str();
                    g.j.part("arn:aws:iam::");
                    g.j.part(&g.ctx.account_id);
                    g.j.part(":mfa/yubikey-");
                    g.push_rand(DIGITS, 4);
                    g.j.end_str();
                }
                g.j.kv_str("MFAUsed", if mfa { "Yes" } else { "No" });
            }),
            Additional::Lambda { ref function_arn } => {
                self.key_obj("additionalEventData", |g| {
                    g.j.key("functionVersion");
                    g.j.begin_str();
                    g.j.part(function_arn);
                    g.j.part(":$LATEST");
                    g.j.end_str();
                })
            }
            Additional::Kms => self.key_obj("additionalEventData", |g| {
                g.j.kv_str("keyAlias", "alias/app-data");
            }),
        }

        if !sign_in {
            // Each service has its own request-id shape; parsers that sniff
            // ids should see the real variety.
            self.j.key("requestID");
            match spec.service_prefix() {
                "s3" => self.id_str("", HEX_UPPER, 16),
                "dynamodb" => self.id_str("", UPPER_ALNUM, 52),
                _ => self.uuid_str(),
            }
        }
        self.kv_uuid("eventID");
        self.j.kv_bool("readOnly", spec.read_only);

        if !extra.resources.is_empty() {
            self.key_arr("resources", |g| {
                for r in &extra.resources {
                    g.obj(|g| {
                        if let Some(a) = &r.account {
                            g.j.kv_str("accountId", a);
                        }
                        g.j.kv_str("type", r.ty);
                        g.j.kv_str("ARN", &r.arn);
                    });
                }
            });
        }

        self.j.kv_str("eventType", spec.event_type.as_str());
        self.j
            .kv_bool("managementEvent", spec.category == Category::Management);
        self.kv_account("recipientAccountId");
        if extra.shared_event_id || (service_event && self.chance(0.3)) {
            self.kv_uuid("sharedEventID");
        }
        if extra.vpc_endpoint {
            self.kv_id("vpcEndpointId", "vpce-0", HEX, 16);
            self.kv_account("vpcEndpointAccountId");
        }
        self.j.kv_str(
            "eventCategory",
            match spec.category {
                Category::Management => "Management",
                Category::Data => "Data",
            },
        );

        let tls =
            !service_event && actor.kind != IdKind::AwsService && (sign_in || self.chance(0.85));
        if tls {
            self.key_obj("tlsDetails", |g| {
                let v13 = g.chance(0.7);
                g.j.kv_str("tlsVersion", if v13 { "TLSv1.3" } else { "TLSv1.2" });
                g.j.kv_str(
                    "cipherSuite",
                    if v13 {
                        "TLS_AES_128_GCM_SHA256"
                    } else {
                        "ECDHE-RSA-AES128-GCM-SHA256"
                    },
                );
                g.j.key("clientProvidedHostHeader");
                g.j.begin_str();
                if sign_in {
                    g.j.part("signin.aws.amazon.com");
                } else {
                    g.j.part(spec.service_prefix());
                    g.j.part(".");
                    g.j.part(&g.ctx.region);
                    g.j.part(".amazonaws.com");
                }
                g.j.end_str();
            });
        }
        if actor.console && !sign_in {
            self.j.kv_str("sessionCredentialFromConsole", "true");
        }
        self.j.end_obj();
    }

    // ---- identity -----------------------------------------------------

    fn session_attributes(&mut self, mfa: bool) {
        self.key_obj("attributes", |g| {
            let back = g.range(0, 3_600_000) as i64;
            g.j.key("creationDate");
            g.time_str(g.time_ms - back);
            g.j.kv_str("mfaAuthenticated", if mfa { "true" } else { "false" });
        });
    }

    fn session_name(&mut self) -> String {
        match self.below(6) {
            0 => {
                let s = (self.time_ms / 1000 - self.range(0, 3600) as i64).max(0);
                format!("botocore-session-{s}")
            }
            1 => self.instance_id(),
            2 => self.pick(catalog::SSO_USERS).to_owned(),
            3 => "GitHubActions".to_owned(),
            4 => self.rand_string("aws-go-sdk-", DIGITS, 19),
            _ => self.rand_string("terraform-run-", HEX, 8),
        }
    }

    fn identity(&mut self, kind: IdKind, spec: &Spec, console: bool, login_failed: bool) -> Actor {
        let mut actor = Actor {
            kind,
            arn: String::new(),
            service: "",
            console,
        };
        let acct = self.ctx.account_id.clone();
        let sign_in = spec.event_type == EventType::ConsoleSignIn;
        if spec.event_type == EventType::ServiceEvent {
            // Service events carry no identity type, just the account and
            // the invoking service; consumers must cope with that.
            actor.service = spec.source;
            self.obj(|g| {
                g.j.kv_str("accountId", &acct);
                g.j.kv_str("invokedBy", spec.source);
            });
            return actor;
        }
        self.j.begin_obj();
        match kind {
            IdKind::Root => {
                actor.arn = format!("arn:aws:iam::{acct}:root");
                self.j.kv_str("type", "Root");
                self.j.kv_str("principalId", &acct);
                self.j.kv_str("arn", &actor.arn);
                self.j.kv_str("accountId", &acct);
                if sign_in {
                    self.j.kv_str("accessKeyId", "");
                } else {
                    self.kv_id("accessKeyId", "ASIA", UPPER_ALNUM, 16);
                    self.key_obj("sessionContext", |g| {
                        g.empty_obj("sessionIssuer");
                        g.empty_obj("webIdFederationData");
                        g.session_attributes(true);
                    });
                }
            }
            IdKind::IamUser if login_failed && self.chance(0.5) => {
                // CloudTrail redacts the typed user name when it does not
                // match an existing user, to avoid logging mistyped passwords.
                self.j.kv_str("type", "IAMUser");
                self.j.kv_str("principalId", "");
                self.j.kv_str("accountId", &acct);
                self.j.kv_str("accessKeyId", "");
                self.j.kv_str("userName", "HIDDEN_DUE_TO_SECURITY_REASONS");
            }
            IdKind::IamUser => {
                let user = self.pick(catalog::USERS);
                actor.arn = format!("arn:aws:iam::{acct}:user/{user}");
                self.j.kv_str("type", "IAMUser");
                self.j.key("principalId");
                self.j.begin_str();
                self.j.part("AIDA");
                push_stable(&mut self.j.buf, UPPER_ALNUM, 17, &[&acct, user]);
                self.j.end_str();
                self.j.kv_str("arn", &actor.arn);
                self.j.kv_str("accountId", &acct);
                if sign_in {
                    self.j.kv_str("accessKeyId", "");
                } else if console {
                    self.kv_id("accessKeyId", "ASIA", UPPER_ALNUM, 16);
                } else {
                    self.j.key("accessKeyId");
                    self.j.begin_str();
                    self.j.part("AKIA");
                    push_stable(&mut self.j.buf, UPPER_ALNUM, 16, &[&acct, user, "key"]);
                    self.j.end_str();
                }
                self.j.kv_str("userName", user);
                if console && !sign_in {
                    self.key_obj("sessionContext", |g| {
                        g.empty_obj("sessionIssuer");
                        g.empty_obj("webIdFederationData");
                        let mfa = g.chance(0.7);
                        g.session_attributes(mfa);
                    });
                }
            }
            IdKind::AssumedRole => {
                let role = self.pick(catalog::ROLES);
                // Console sign-ins through a role are SSO/federated people,
                // whose session is named after them, not a machine.
                let session = if sign_in {
                    self.pick(catalog::SSO_USERS).to_owned()
                } else {
                    self.session_name()
                };
                let role_arn = self.role_arn(&acct, role);
                actor.arn = format!("arn:aws:sts::{acct}:assumed-role/{role}/{session}");
                self.j.kv_str("type", "AssumedRole");
                self.j.key("principalId");
                self.j.begin_str();
                self.j.part("AROA");
                push_stable(&mut self.j.buf, UPPER_ALNUM, 17, &[&acct, role]);
                self.j.part(":");
                self.j.part(&session);
                self.j.end_str();
                self.j.kv_str("arn", &actor.arn);
                self.j.kv_str("accountId", &acct);
                if !sign_in {
                    self.kv_id("accessKeyId", "ASIA", UPPER_ALNUM, 16);
                }
                self.key_obj("sessionContext", |g| {
                    g.key_obj("sessionIssuer", |g| {
                        g.j.kv_str("type", "Role");
                        g.j.key("principalId");
                        g.j.begin_str();
                        g.j.part("AROA");
                        push_stable(&mut g.j.buf, UPPER_ALNUM, 17, &[&acct, role]);
                        g.j.end_str();
                        g.j.kv_str("arn", &role_arn);
                        g.j.kv_str("accountId", &acct);
                        g.j.kv_str("userName", role);
                    });
                    g.empty_obj("webIdFederationData");
                    let mfa = g.chance(0.3);
                    g.session_attributes(mfa);
                    if session.starts_with("i-") {
                        g.j.kv_str("ec2RoleDelivery", "2.0");
                    }
                });
            }
            IdKind::Role => {
                let role = self.pick(catalog::ROLES);
                actor.arn = self.role_arn(&acct, role);
                self.j.kv_str("type", "Role");
                self.j.key("principalId");
                self.j.begin_str();
                self.j.part("AROA");
                push_stable(&mut self.j.buf, UPPER_ALNUM, 17, &[&acct, role]);
                self.j.end_str();
                self.j.kv_str("arn", &actor.arn);
                self.j.kv_str("accountId", &acct);
                self.j.kv_str("userName", role);
            }
            IdKind::FederatedUser => {
                let name = self.pick(catalog::FEDERATED);
                let issuer = self.pick(catalog::USERS);
                actor.arn = format!("arn:aws:sts::{acct}:federated-user/{name}");
                self.j.kv_str("type", "FederatedUser");
                self.j.key("principalId");
                self.j.begin_str();
                self.j.part(&acct);
                self.j.part(":");
                self.j.part(name);
                self.j.end_str();
                self.j.kv_str("arn", &actor.arn);
                self.j.kv_str("accountId", &acct);
                self.kv_id("accessKeyId", "ASIA", UPPER_ALNUM, 16);
                self.key_obj("sessionContext", |g| {
                    g.key_obj("sessionIssuer", |g| {
                        g.j.kv_str("type", "IAMUser");
                        g.j.key("principalId");
                        g.j.begin_str();
                        g.j.part("AIDA");
                        push_stable(&mut g.j.buf, UPPER_ALNUM, 17, &[&acct, issuer]);
                        g.j.end_str();
                        g.j.key("arn");
                        g.j.begin_str();
                        g.j.part("arn:aws:iam::");
                        g.j.part(&acct);
                        g.j.part(":user/");
                        g.j.part(issuer);
                        g.j.end_str();
                        g.j.kv_str("accountId", &acct);
                        g.j.kv_str("userName", issuer);
                    });
                    g.empty_obj("webIdFederationData");
                    g.session_attributes(false);
                });
            }
            IdKind::Directory => {
                let user = self.pick(catalog::SSO_USERS);
                self.j.kv_str("type", "Directory");
                self.j.key("principalId");
                self.j.begin_str();
                self.j.part("d-9067");
                push_stable(&mut self.j.buf, DIGITS, 6, &[&acct, "directory"]);
                self.j.part(":");
                push_stable(&mut self.j.buf, HEX, 32, &[&acct, user]);
                self.j.end_str();
                self.j.kv_str("accountId", &acct);
                self.j.kv_str("userName", user);
            }
            IdKind::AwsAccount => {
                self.j.kv_str("type", "AWSAccount");
                self.kv_id("principalId", "AIDA", UPPER_ALNUM, 17);
                self.j.key("accountId");
                self.j.begin_str();
                let d = self.range(1, 9);
                self.j.part_u64(d);
                self.push_rand(DIGITS, 11);
                self.j.end_str();
            }
            IdKind::AwsService => {
                actor.service = self.pick(catalog::SERVICE_PRINCIPALS);
                self.j.kv_str("type", "AWSService");
                self.j.kv_str("invokedBy", actor.service);
            }
            IdKind::Unknown => {
                let user = self.pick(catalog::SSO_USERS);
                self.j.kv_str("type", "Unknown");
                self.j.key("principalId");
                self.uuid_str();
                self.j.kv_str("arn", "");
                self.j.kv_str("accountId", &acct);
                self.j.kv_str("accessKeyId", "");
                self.j.kv_str("userName", user);
            }
            IdKind::SamlUser => {
                let user = self.pick(catalog::SSO_USERS);
                self.j.kv_str("type", "SAMLUser");
                self.j.key("principalId");
                self.j.begin_str();
                push_stable(&mut self.j.buf, B64, 27, &[&acct, "saml"]);
                self.j.part("=:");
                self.j.part(user);
                self.j.end_str();
                self.j.kv_str("userName", user);
                self.j.key("identityProvider");
                self.j.begin_str();
                push_stable(&mut self.j.buf, B64, 27, &[&acct, "saml"]);
                self.j.part("=");
                self.j.end_str();
            }
            IdKind::WebIdentityUser => {
                if self.chance(0.6) {
                    let provider = format!(
                        "arn:aws:iam::{acct}:oidc-provider/token.actions.githubusercontent.com"
                    );
                    let repo = self.pick(&["web-app", "infra", "data-pipeline"]);
                    let subject = format!("repo:acme/{repo}:ref:refs/heads/main");
                    self.j.kv_str("type", "WebIdentityUser");
                    self.j.kv_str(
                        "principalId",
                        &format!("{provider}:sts.amazonaws.com:{subject}"),
                    );
                    self.j.kv_str("userName", &subject);
                    self.j.kv_str("identityProvider", &provider);
                } else {
                    self.j.kv_str("type", "WebIdentityUser");
                    self.j.key("principalId");
                    self.j.begin_str();
                    self.j.part("accounts.google.com:");
                    push_stable(&mut self.j.buf, DIGITS, 12, &[&acct, "gapp"]);
                    self.j.part(".apps.googleusercontent.com:");
                    self.push_rand(DIGITS, 21);
                    self.j.end_str();
                    self.kv_id("userName", "", DIGITS, 21);
                    self.j.kv_str("identityProvider", "accounts.google.com");
                }
            }
            IdKind::IdentityCenterUser => {
                self.j.kv_str("type", "IdentityCenterUser");
                self.j.kv_str("accountId", &acct);
                self.key_obj("onBehalfOf", |g| {
                    g.kv_uuid("userId");
                    g.j.key("identityStoreArn");
                    g.j.begin_str();
                    g.j.part("arn:aws:identitystore::");
                    g.j.part(&acct);
                    g.j.part(":identitystore/d-");
                    push_stable(&mut g.j.buf, LOWER_ALNUM, 10, &[&acct, "idstore"]);
                    g.j.end_str();
                });
                self.kv_id("credentialId", "", MIXED_ALNUM, 40);
            }
        }
        self.j.end_obj();
        actor
    }

    // ---- errors -------------------------------------------------------

    fn error_fields(&mut self, spec: &Spec, actor: &Actor) {
        let prefix = spec.service_prefix();
        let who = if actor.arn.is_empty() {
            "an anonymous or unidentified principal".to_owned()
        } else {
            actor.arn.clone()
        };
        let denied = || {
            format!(
                "User: {who} is not authorized to perform: {prefix}:{} because no identity-based policy allows the {prefix}:{} action",
                spec.name, spec.name
            )
        };
        let (code, message): (&str, String) = match prefix {
            "ec2" => match self.below(3) {
                0 => {
                    let mut m =
                        "You are not authorized to perform this operation. User: ".to_owned();
                    m.push_str(&who);
                    m.push_str(" is not authorized to perform: ec2:");
                    m.push_str(spec.name);
                    m.push_str(". Encoded authorization failure message: ");
                    let enc = self.rand_string("", B64, 180);
                    m.push_str(&enc);
                    ("Client.UnauthorizedOperation", m)
                }
                1 => {
                    let id = self.instance_id();
                    (
                        "Client.InvalidInstanceID.NotFound",
                        format!("The instance ID '{id}' does not exist"),
                    )
                }
                _ => (
                    "Client.RequestLimitExceeded",
                    "Request limit exceeded.".to_owned(),
                ),
            },
            "s3" => match self.below(3) {
                0 => ("AccessDenied", "Access Denied".to_owned()),
                1 => ("NoSuchKey", "The specified key does not exist.".to_owned()),
                _ => (
                    "NoSuchBucket",
                    "The specified bucket does not exist".to_owned(),
                ),
            },
            "iam" => match self.below(3) {
                0 => ("AccessDenied", denied()),
                1 => (
                    "NoSuchEntityException",
                    "The user with name ghost cannot be found.".to_owned(),
                ),
                _ => (
                    "EntityAlreadyExistsException",
                    "Entity already exists.".to_owned(),
                ),
            },
            "kms" => match self.below(3) {
                0 => ("AccessDeniedException", denied()),
                1 => ("ThrottlingException", "Rate exceeded".to_owned()),
                _ => (
                    "KMSInvalidStateException",
                    "arn:aws:kms:... is pending deletion.".to_owned(),
                ),
            },
            "dynamodb" | "lambda" => match self.below(3) {
                0 => ("AccessDeniedException", denied()),
                1 => (
                    "ResourceNotFoundException",
                    "Requested resource not found".to_owned(),
                ),
                _ => ("ThrottlingException", "Rate exceeded".to_owned()),
            },
            _ => match self.below(3) {
                0 | 1 => ("AccessDenied", denied()),
                _ => ("ThrottlingException", "Rate exceeded".to_owned()),
            },
        };
        self.j.kv_str("errorCode", code);
        self.j.kv_str("errorMessage", &message);
    }

    // ---- request / response -------------------------------------------

    /// Writes `requestParameters` and `responseElements`.
    fn body(&mut self, spec: &Spec, error: bool, login_failed: bool, actor: &Actor) -> Extra {
        let mut x = Extra::default();
        self.j.key("requestParameters");
        match spec.ev {
            Ev::Ec2DescribeInstances => {
                self.obj(|g| {
                    let ids = g.until.is_some() || g.chance(0.4);
                    g.key_obj("instancesSet", |g| {
                        if ids {
                            let n = g.range(1, 3) as u32;
                            g.key_arr("items", |g| {
                                let mut i = 0;
                                while g.more(i, n) {
                                    g.obj(|g| g.kv_id("instanceId", "i-0", HEX, 16));
                                    i += 1;
                                }
                            });
                        }
                    });
                    g.key_obj("filterSet", |g| {
                        if g.chance(0.2) {
                            g.key_arr("items", |g| {
                                g.obj(|g| {
                                    g.j.kv_str("name", "tag:Name");
                                    g.key_obj("valueSet", |g| {
                                        g.key_arr("items", |g| {
                                            g.obj(|g| g.j.kv_str("value", "web-*"))
                                        })
                                    });
                                })
                            });
                        }
                    });
                });
                self.j.kv_null("responseElements");
            }
            Ev::Ec2DescribeSecurityGroups => {
                self.obj(|g| {
                    g.empty_obj("securityGroupSet");
                    g.key_obj("securityGroupIdSet", |g| {
                        if g.chance(0.5) {
                            g.key_arr("items", |g| g.obj(|g| g.kv_id("groupId", "sg-0", HEX, 16)));
                        }
                    });
                    g.empty_obj("filterSet");
                });
                self.j.kv_null("responseElements");
            }
            Ev::Ec2DescribeVpcs => {
                self.obj(|g| {
                    g.empty_obj("vpcSet");
                    g.empty_obj("filterSet");
                });
                self.j.kv_null("responseElements");
            }
            Ev::Ec2DescribeRegions => {
                self.obj(|g| {
                    g.empty_obj("regionSet");
                    let all = g.chance(0.5);
                    g.j.kv_bool("allRegions", all);
                });
                self.j.kv_null("responseElements");
            }
            Ev::Ec2DescribeVolumes => {
                self.obj(|g| {
                    g.empty_obj("volumeSet");
                    g.key_obj("filterSet", |g| {
                        g.key_arr("items", |g| {
                            g.obj(|g| {
                                g.j.kv_str("name", "attachment.instance-id");
                                g.key_obj("valueSet", |g| {
                                    g.key_arr("items", |g| {
                                        g.obj(|g| g.kv_id("value", "i-0", HEX, 16))
                                    })
                                });
                            })
                        });
                    });
                });
                self.j.kv_null("responseElements");
            }
            Ev::Ec2RunInstances => {
                let itype = self.pick(catalog::INSTANCE_TYPES);
                let ami = self.rand_string("ami-0", HEX, 16);
                let tag = self.tag_value();
                self.obj(|g| {
                    g.key_obj("instancesSet", |g| {
                        g.key_arr("items", |g| {
                            g.obj(|g| {
                                g.j.kv_str("imageId", &ami);
                                g.j.kv_u64("minCount", 1);
                                g.j.kv_u64("maxCount", 1);
                            })
                        })
                    });
                    g.j.kv_str("instanceType", itype);
                    g.empty_obj("blockDeviceMapping");
                    g.key_obj("monitoring", |g| g.j.kv_bool("enabled", false));
                    g.j.kv_bool("disableApiTermination", false);
                    g.j.kv_bool("disableApiStop", false);
                    g.kv_uuid("clientToken");
                    g.key_obj("tagSpecificationSet", |g| {
                        g.key_arr("items", |g| {
                            g.obj(|g| {
                                g.j.kv_str("resourceType", "instance");
                                g.key_arr("tags", |g| {
                                    g.obj(|g| {
                                        g.j.kv_str("key", "Name");
                                        g.j.kv_str("value", tag);
                                    })
                                });
                            })
                        })
                    });
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.kv_uuid("requestId");
                        g.kv_id("reservationId", "r-0", HEX, 16);
                        g.kv_account("ownerId");
                        g.empty_obj("groupSet");
                        g.key_obj("instancesSet", |g| {
                            g.key_arr("items", |g| {
                                g.obj(|g| {
                                    g.kv_id("instanceId", "i-0", HEX, 16);
                                    g.j.kv_str("imageId", &ami);
                                    g.key_obj("instanceState", |g| {
                                        g.j.kv_u64("code", 0);
                                        g.j.kv_str("name", "pending");
                                    });
                                    let (b, c) = (g.below(255), g.range(1, 254));
                                    g.j.key("privateDnsName");
                                    g.j.begin_str();
                                    g.j.part("ip-10-0-");
                                    g.j.part_u64(u64::from(b));
                                    g.j.part("-");
                                    g.j.part_u64(c);
                                    g.j.part(".ec2.internal");
                                    g.j.end_str();
                                    g.j.kv_u64("amiLaunchIndex", 0);
                                    g.empty_obj("productCodes");
                                    g.j.kv_str("instanceType", itype);
                                    g.j.kv_u64("launchTime", g.time_ms as u64);
                                    g.key_obj("placement", |g| {
                                        g.j.key("availabilityZone");
                                        g.j.begin_str();
                                        g.j.part(&g.ctx.region);
                                        g.j.part("a");
                                        g.j.end_str();
                                        g.j.kv_str("tenancy", "default");
                                    });
                                    g.kv_id("subnetId", "subnet-0", HEX, 16);
                                    g.kv_id("vpcId", "vpc-0", HEX, 16);
                                    g.j.key("privateIpAddress");
                                    g.j.begin_str();
                                    g.j.part("10.0.");
                                    g.j.part_u64(u64::from(b));
                                    g.j.part(".");
                                    g.j.part_u64(c);
                                    g.j.end_str();
                                })
                            })
                        });
                    });
                }
            }
            Ev::Ec2TerminateInstances | Ev::Ec2StopInstances => {
                let stop = spec.ev == Ev::Ec2StopInstances;
                // The response repeats every id with its state transition, so
                // a padded request stops once its ids plus their fixed-size
                // response entries (byte counts below) reach the target.
                let response_item_min: usize = match (error, stop) {
                    (true, _) => 0,
                    (false, true) => 126,
                    (false, false) => 131,
                };
                let mut ids = Vec::new();
                self.obj(|g| {
                    g.key_obj("instancesSet", |g| {
                        let n = g.range(1, 3) as u32;
                        g.key_arr("items", |g| {
                            let mut i = 0;
                            loop {
                                let go = match g.until {
                                    Some(t) => {
                                        i == 0 || g.j.buf.len() + ids.len() * response_item_min < t
                                    }
                                    None => i < n,
                                };
                                if !go {
                                    break;
                                }
                                let id = g.instance_id();
                                g.obj(|g| g.j.kv_str("instanceId", &id));
                                ids.push(id);
                                i += 1;
                            }
                        });
                    });
                    if stop {
                        g.j.kv_bool("force", false);
                    }
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.kv_uuid("requestId");
                        g.key_obj("instancesSet", |g| {
                            g.key_arr("items", |g| {
                                for id in &ids {
                                    g.obj(|g| {
                                        g.j.kv_str("instanceId", id);
                                        g.key_obj("currentState", |g| {
                                            g.j.kv_u64("code", if stop { 64 } else { 32 });
                                            g.j.kv_str(
                                                "name",
                                                if stop { "stopping" } else { "shutting-down" },
                                            );
                                        });
                                        g.key_obj("previousState", |g| {
                                            g.j.kv_u64("code", 16);
                                            g.j.kv_str("name", "running");
                                        });
                                    });
                                }
                            })
                        });
                    });
                }
            }
            Ev::Ec2CreateTags => {
                self.obj(|g| {
                    let n = g.range(1, 2) as u32;
                    g.key_obj("resourcesSet", |g| {
                        g.key_arr("items", |g| {
                            let mut i = 0;
                            while g.more(i, n) {
                                g.obj(|g| g.kv_id("resourceId", "i-0", HEX, 16));
                                i += 1;
                            }
                        })
                    });
                    g.key_obj("tagSet", |g| {
                        g.key_arr("items", |g| {
                            for k in ["Team", "CostCenter", "Owner"] {
                                let v = g.tag_value();
                                g.obj(|g| {
                                    g.j.kv_str("key", k);
                                    g.j.kv_str("value", v);
                                });
                            }
                        })
                    });
                });
                self.response_return(error);
            }
            Ev::Ec2CreateSecurityGroup => {
                let sg = self.rand_string("sg-0", HEX, 16);
                self.obj(|g| {
                    g.j.key("groupName");
                    g.j.begin_str();
                    g.j.part("web-sg-");
                    let n = g.below(1000);
                    g.j.part_u64(u64::from(n));
                    g.j.end_str();
                    let desc = if g.exotic() {
                        "Accès web — équipe 日本 \"prod\""
                    } else {
                        "Allow HTTPS from the load balancer"
                    };
                    g.j.kv_str("groupDescription", desc);
                    g.kv_id("vpcId", "vpc-0", HEX, 16);
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.kv_uuid("requestId");
                        g.j.kv_bool("_return", true);
                        g.j.kv_str("groupId", &sg);
                    });
                }
            }
            Ev::Ec2AuthorizeSecurityGroupIngress => {
                let sg = self.rand_string("sg-0", HEX, 16);
                let port = self.pick(&[22u64, 443, 3389, 5432, 0]);
                let cidr = self.pick(&["0.0.0.0/0", "10.0.0.0/8", "203.0.113.0/24"]);
                self.obj(|g| {
                    g.j.kv_str("groupId", &sg);
                    g.key_obj("ipPermissions", |g| {
                        g.key_arr("items", |g| {
                            g.obj(|g| {
                                g.j.kv_str("ipProtocol", if port == 0 { "-1" } else { "tcp" });
                                g.j.kv_u64("fromPort", port);
                                g.j.kv_u64("toPort", port);
                                g.empty_obj("groups");
                                g.key_obj("ipRanges", |g| {
                                    g.key_arr("items", |g| g.obj(|g| g.j.kv_str("cidrIp", cidr)))
                                });
                                g.empty_obj("ipv6Ranges");
                                g.empty_obj("prefixListIds");
                            })
                        })
                    });
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.kv_uuid("requestId");
                        g.j.kv_bool("_return", true);
                        g.key_obj("securityGroupRuleSet", |g| {
                            g.key_arr("items", |g| {
                                g.obj(|g| {
                                    g.kv_account("groupOwnerId");
                                    g.j.kv_str("groupId", &sg);
                                    g.kv_id("securityGroupRuleId", "sgr-0", HEX, 16);
                                    g.j.kv_bool("isEgress", false);
                                    g.j.kv_str("ipProtocol", if port == 0 { "-1" } else { "tcp" });
                                    g.j.kv_u64("fromPort", port);
                                    g.j.kv_u64("toPort", port);
                                    g.j.kv_str("cidrIpv4", cidr);
                                })
                            })
                        });
                    });
                }
            }
            Ev::Ec2CreateNetworkAclEntry => {
                self.obj(|g| {
                    g.kv_id("networkAclId", "acl-0", HEX, 16);
                    let rule = g.range(1, 32) * 10;
                    g.j.kv_u64("ruleNumber", rule);
                    g.j.kv_bool("egress", false);
                    let allow = g.chance(0.6);
                    g.j.kv_str("ruleAction", if allow { "allow" } else { "deny" });
                    g.empty_obj("icmpTypeCode");
                    g.key_obj("portRange", |g| {
                        g.j.kv_u64("from", 443);
                        g.j.kv_u64("to", 443);
                    });
                    g.j.kv_str("aclProtocol", "6");
                    g.j.kv_str("cidrBlock", "0.0.0.0/0");
                });
                self.response_return(error);
            }
            Ev::Ec2CreateRoute => {
                self.obj(|g| {
                    g.kv_id("routeTableId", "rtb-0", HEX, 16);
                    g.j.kv_str("destinationCidrBlock", "0.0.0.0/0");
                    g.kv_id("gatewayId", "igw-0", HEX, 16);
                });
                self.response_return(error);
            }
            Ev::Ec2CreateVpc => {
                let second = self.below(256);
                let cidr = format!("10.{second}.0.0/16");
                self.obj(|g| {
                    g.j.kv_str("cidrBlock", &cidr);
                    g.j.kv_str("instanceTenancy", "default");
                    g.j.kv_bool("amazonProvidedIpv6CidrBlock", false);
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.kv_uuid("requestId");
                        g.key_obj("vpc", |g| {
                            g.kv_id("vpcId", "vpc-0", HEX, 16);
                            g.j.kv_str("state", "pending");
                            g.kv_account("ownerId");
                            g.j.kv_str("cidrBlock", &cidr);
                            g.kv_id("dhcpOptionsId", "dopt-0", HEX, 16);
                            g.j.kv_str("instanceTenancy", "default");
                            g.j.kv_bool("isDefault", false);
                        });
                    });
                }
            }
            Ev::Ec2SharedSnapshotVolumeCreated => {
                self.j.null();
                self.j.kv_null("responseElements");
                self.key_obj("serviceEventDetails", |g| {
                    g.kv_id("snapshotId", "snap-0", HEX, 16);
                    g.kv_id("volumeId", "vol-0", HEX, 16);
                });
            }
            Ev::S3GetObject | Ev::S3PutObject | Ev::S3HeadObject | Ev::S3DeleteObject => {
                let bucket = self.bucket();
                let key = self.object_key();
                self.obj(|g| {
                    g.j.kv_str("bucketName", &bucket);
                    g.s3_host(&bucket);
                    g.j.kv_str("key", &key);
                    if spec.ev == Ev::S3PutObject && g.chance(0.3) {
                        g.j.kv_str("x-amz-server-side-encryption", "aws:kms");
                    }
                });
                self.j.key("responseElements");
                if spec.ev == Ev::S3PutObject && !error {
                    self.obj(|g| {
                        g.j.kv_str("x-amz-server-side-encryption", "AES256");
                        g.kv_id("x-amz-version-id", "", MIXED_ALNUM, 32);
                    });
                } else {
                    self.j.null();
                }
                let size = self.range(0, 50_000_000);
                let (bytes_in, bytes_out) = match spec.ev {
                    Ev::S3PutObject => (size, 0),
                    Ev::S3GetObject if !error => (0, size),
                    _ => (0, 0),
                };
                x.additional = Additional::S3 {
                    bytes_in,
                    bytes_out,
                };
                x.resources.push(Res {
                    ty: "AWS::S3::Object",
                    arn: format!("arn:aws:s3:::{bucket}/{key}"),
                    account: None,
                });
                x.resources.push(Res {
                    ty: "AWS::S3::Bucket",
                    arn: format!("arn:aws:s3:::{bucket}"),
                    account: Some(self.ctx.account_id.clone()),
                });
                x.vpc_endpoint = self.chance(0.2);
            }
            Ev::S3ListObjects => {
                let bucket = self.bucket();
                self.obj(|g| {
                    g.j.kv_str("bucketName", &bucket);
                    g.s3_host(&bucket);
                    g.j.kv_str("list-type", "2");
                    g.j.kv_str("prefix", "raw/2026/");
                    g.j.kv_str("delimiter", "/");
                    g.j.kv_str("encoding-type", "url");
                });
                self.j.kv_null("responseElements");
                x.additional = Additional::S3 {
                    bytes_in: 0,
                    bytes_out: self.range(200, 60_000),
                };
                x.resources.push(Res {
                    ty: "AWS::S3::Bucket",
                    arn: format!("arn:aws:s3:::{bucket}"),
                    account: Some(self.ctx.account_id.clone()),
                });
                x.vpc_endpoint = self.chance(0.2);
            }
            Ev::S3ListBuckets => {
                self.obj(|g| g.j.kv_str("Host", "s3.amazonaws.com"));
                self.j.kv_null("responseElements");
                x.additional = Additional::S3 {
                    bytes_in: 0,
                    bytes_out: self.range(500, 9000),
                };
            }
            Ev::S3GetBucketAcl
            | Ev::S3GetBucketPolicy
            | Ev::S3CreateBucket
            | Ev::S3PutBucketPublicAccessBlock => {
                let bucket = self.bucket();
                self.obj(|g| {
                    match spec.ev {
                        Ev::S3CreateBucket => g.key_obj("CreateBucketConfiguration", |g| {
                            g.j.kv_str("LocationConstraint", &g.ctx.region);
                            g.j.kv_str("xmlns", "http://s3.amazonaws.com/doc/2006-03-01/");
                        }),
                        Ev::S3PutBucketPublicAccessBlock => {
                            g.j.kv_str("publicAccessBlock", "");
                            g.key_obj("PublicAccessBlockConfiguration", |g| {
                                g.j.kv_str("xmlns", "http://s3.amazonaws.com/doc/2006-03-01/");
                                let on = g.chance(0.7);
                                g.j.kv_bool("RestrictPublicBuckets", on);
                                g.j.kv_bool("BlockPublicPolicy", on);
                                g.j.kv_bool("BlockPublicAcls", on);
                                g.j.kv_bool("IgnorePublicAcls", on);
                            });
                        }
                        Ev::S3GetBucketPolicy => g.j.kv_str("policy", ""),
                        _ => g.j.kv_str("acl", ""),
                    }
                    g.j.kv_str("bucketName", &bucket);
                    g.s3_host(&bucket);
                });
                self.j.kv_null("responseElements");
                x.additional = Additional::S3 {
                    bytes_in: 0,
                    bytes_out: 0,
                };
                x.resources.push(Res {
                    ty: "AWS::S3::Bucket",
                    arn: format!("arn:aws:s3:::{bucket}"),
                    account: Some(self.ctx.account_id.clone()),
                });
            }
            Ev::S3PutBucketPolicy => {
                let bucket = self.bucket();
                self.obj(|g| {
                    g.key_obj("bucketPolicy", |g| {
                        g.j.kv_str("Version", "2012-10-17");
                        g.key_arr("Statement", |g| {
                            let n = g.range(1, 3) as u32;
                            let mut i = 0;
                            while g.more(i, n) {
                                g.bucket_statement(&bucket, i);
                                i += 1;
                            }
                        });
                    });
                    g.j.kv_str("bucketName", &bucket);
                    g.s3_host(&bucket);
                    g.j.kv_str("policy", "");
                });
                self.j.kv_null("responseElements");
                x.resources.push(Res {
                    ty: "AWS::S3::Bucket",
                    arn: format!("arn:aws:s3:::{bucket}"),
                    account: Some(self.ctx.account_id.clone()),
                });
            }
            Ev::IamGetUser => {
                if self.chance(0.3) {
                    self.j.null();
                } else {
                    let u = self.pick(catalog::USERS);
                    self.obj(|g| g.j.kv_str("userName", u));
                }
                self.j.kv_null("responseElements");
            }
            Ev::IamListRoles => {
                self.obj(|g| g.j.kv_u64("maxItems", 1000));
                self.j.kv_null("responseElements");
            }
            Ev::IamGetRole | Ev::IamListAttachedRolePolicies => {
                let r = self.pick(catalog::ROLES);
                self.obj(|g| g.j.kv_str("roleName", r));
                self.j.kv_null("responseElements");
            }
            Ev::IamCreateUser => {
                let u = self.rand_string("contractor-", LOWER_ALNUM, 6);
                self.obj(|g| g.j.kv_str("userName", &u));
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.key_obj("user", |g| {
                            g.j.kv_str("path", "/");
                            g.j.kv_str("userName", &u);
                            g.kv_id("userId", "AIDA", UPPER_ALNUM, 17);
                            let arn = format!("arn:aws:iam::{}:user/{u}", g.account());
                            g.j.kv_str("arn", &arn);
                            g.kv_human_time("createDate", g.time_ms, false);
                        })
                    });
                }
            }
            Ev::IamCreateAccessKey => {
                let u = self.pick(catalog::USERS);
                self.obj(|g| g.j.kv_str("userName", u));
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.key_obj("accessKey", |g| {
                            g.j.kv_str("userName", u);
                            g.kv_id("accessKeyId", "AKIA", UPPER_ALNUM, 16);
                            g.j.kv_str("status", "Active");
                            g.kv_human_time("createDate", g.time_ms, false);
                        })
                    });
                }
            }
            Ev::IamAttachRolePolicy => {
                let r = self.pick(catalog::ROLES);
                let p = self.pick(catalog::MANAGED_POLICIES);
                self.obj(|g| {
                    g.j.kv_str("roleName", r);
                    g.j.kv_str("policyArn", p);
                });
                self.j.kv_null("responseElements");
            }
            Ev::IamPutUserPolicy | Ev::IamPutRolePolicy => {
                let user = spec.ev == Ev::IamPutUserPolicy;
                let who = if user {
                    self.pick(catalog::USERS)
                } else {
                    self.pick(catalog::ROLES)
                };
                self.obj(|g| {
                    g.j.kv_str(if user { "userName" } else { "roleName" }, who);
                    g.kv_id("policyName", "inline-", LOWER_ALNUM, 8);
                    g.j.key("policyDocument");
                    g.policy_document_string();
                });
                self.j.kv_null("responseElements");
            }
            Ev::IamCreateRole => {
                let name = self.rand_string("app-role-", LOWER_ALNUM, 6);
                self.obj(|g| {
                    g.j.kv_str("roleName", &name);
                    g.j.kv_str(
                        "assumeRolePolicyDocument",
                        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Principal\": {\"Service\": \"lambda.amazonaws.com\"},\n      \"Action\": \"sts:AssumeRole\"\n    }\n  ]\n}",
                    );
                    let desc = if g.exotic() {
                        "Rôle applicatif — 日本語 ✓"
                    } else {
                        "Execution role for the orders service"
                    };
                    g.j.kv_str("description", desc);
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.key_obj("role", |g| {
                            g.j.kv_str("path", "/");
                            g.j.kv_str("roleName", &name);
                            g.kv_id("roleId", "AROA", UPPER_ALNUM, 17);
                            let arn = format!("arn:aws:iam::{}:role/{name}", g.account());
                            g.j.kv_str("arn", &arn);
                            g.kv_human_time("createDate", g.time_ms, false);
                            g.j.kv_str(
                                "assumeRolePolicyDocument",
                                "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D",
                            );
                        })
                    });
                }
            }
            Ev::StsGetCallerIdentity => {
                self.j.null();
                self.j.kv_null("responseElements");
            }
            Ev::StsAssumeRole | Ev::StsAssumeRoleWithSaml | Ev::StsAssumeRoleWithWebIdentity => {
                let cross_account = spec.ev == Ev::StsAssumeRole
                    && (actor.kind == IdKind::AwsAccount || self.chance(0.1));
                let role = self.pick(catalog::ROLES);
                let role_arn = self.role_arn(&self.ctx.account_id, role);
                let session = match spec.ev {
                    Ev::StsAssumeRoleWithSaml => self.pick(catalog::SSO_USERS).to_owned(),
                    Ev::StsAssumeRoleWithWebIdentity => "GitHubActions".to_owned(),
                    _ => self.session_name(),
                };
                self.obj(|g| {
                    if spec.ev == Ev::StsAssumeRoleWithSaml {
                        g.kv_id("sAMLAssertionID", "_", HEX, 32);
                        g.j.kv_str("roleSessionName", &session);
                        g.j.key("principalArn");
                        g.j.begin_str();
                        g.j.part("arn:aws:iam::");
                        g.j.part(&g.ctx.account_id);
                        g.j.part(":saml-provider/Okta");
                        g.j.end_str();
                        g.j.kv_str("roleArn", &role_arn);
                    } else {
                        g.j.kv_str("roleArn", &role_arn);
                        g.j.kv_str("roleSessionName", &session);
                    }
                    g.j.kv_u64("durationSeconds", 3600);
                    if spec.ev == Ev::StsAssumeRole && g.chance(0.2) {
                        g.kv_id("externalId", "", HEX, 24);
                    }
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.key_obj("credentials", |g| {
                            g.kv_id("accessKeyId", "ASIA", UPPER_ALNUM, 16);
                            g.kv_id("sessionToken", "IQoJb3JpZ2luX2VjE", B64, 300);
                            g.kv_human_time("expiration", g.time_ms + 3_600_000, true);
                        });
                        if spec.ev == Ev::StsAssumeRoleWithWebIdentity {
                            g.j.kv_str(
                                "subjectFromWebIdentityToken",
                                "repo:acme/web-app:ref:refs/heads/main",
                            );
                        }
                        g.key_obj("assumedRoleUser", |g| {
                            g.j.key("assumedRoleId");
                            g.j.begin_str();
                            g.j.part("AROA");
                            push_stable(&mut g.j.buf, UPPER_ALNUM, 17, &[&g.ctx.account_id, role]);
                            g.j.part(":");
                            g.j.part(&session);
                            g.j.end_str();
                            g.j.key("arn");
                            g.j.begin_str();
                            g.j.part("arn:aws:sts::");
                            g.j.part(&g.ctx.account_id);
                            g.j.part(":assumed-role/");
                            g.j.part(role);
                            g.j.part("/");
                            g.j.part(&session);
                            g.j.end_str();
                        });
                        match spec.ev {
                            Ev::StsAssumeRoleWithSaml => {
                                g.j.kv_str("subject", &session);
                                g.j.kv_str("subjectType", "persistent");
                                g.kv_id("issuer", "http://www.okta.com/exk", MIXED_ALNUM, 17);
                                g.j.kv_str("audience", "https://signin.aws.amazon.com/saml");
                            }
                            Ev::StsAssumeRoleWithWebIdentity => {
                                g.j.key("provider");
                                g.j.begin_str();
                                g.j.part("arn:aws:iam::");
                                g.j.part(&g.ctx.account_id);
                                g.j.part(":oidc-provider/token.actions.githubusercontent.com");
                                g.j.end_str();
                                g.j.kv_str("audience", "sts.amazonaws.com");
                            }
                            _ => {}
                        }
                    });
                }
                x.resources.push(Res {
                    ty: "AWS::IAM::Role",
                    arn: role_arn,
                    account: Some(self.ctx.account_id.clone()),
                });
                x.shared_event_id = cross_account;
            }
            Ev::StsGetSessionToken => {
                self.obj(|g| g.j.kv_u64("durationSeconds", 43_200));
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.key_obj("credentials", |g| {
                            g.kv_id("accessKeyId", "ASIA", UPPER_ALNUM, 16);
                            g.kv_id("sessionToken", "IQoJb3JpZ2luX2VjE", B64, 300);
                            g.kv_human_time("expiration", g.time_ms + 43_200_000, true);
                        })
                    });
                }
            }
            Ev::KmsDecrypt | Ev::KmsEncrypt | Ev::KmsGenerateDataKey | Ev::KmsDescribeKey => {
                let key_arn = self.kms_key_arn();
                let bucket_ctx = if self.chance(0.5) {
                    let b = self.bucket();
                    let k = self.object_key();
                    Some(format!("arn:aws:s3:::{b}/{k}"))
                } else {
                    None
                };
                self.obj(|g| {
                    match spec.ev {
                        Ev::KmsDescribeKey => g.j.kv_str("keyId", "alias/aws/s3"),
                        Ev::KmsEncrypt => g.j.kv_str("keyId", "alias/app-data"),
                        Ev::KmsGenerateDataKey => {
                            g.j.kv_str("keyId", &key_arn);
                            g.j.kv_str("keySpec", "AES_256");
                        }
                        _ => {}
                    }
                    if spec.ev != Ev::KmsDescribeKey {
                        g.j.kv_str("encryptionAlgorithm", "SYMMETRIC_DEFAULT");
                        g.key_obj("encryptionContext", |g| match &bucket_ctx {
                            Some(arn) => g.j.kv_str("aws:s3:arn", arn),
                            None => {
                                g.j.key("aws:lambda:FunctionArn");
                                g.j.begin_str();
                                g.j.part("arn:aws:lambda:");
                                g.j.part(&g.ctx.region);
                                g.j.part(":");
                                g.j.part(&g.ctx.account_id);
                                g.j.part(":function:");
                                let f = g.pick(catalog::FUNCTIONS);
                                g.j.part(f);
                                g.j.end_str();
                            }
                        });
                    }
                });
                self.j.kv_null("responseElements");
                if spec.ev == Ev::KmsDecrypt && self.chance(0.2) {
                    x.additional = Additional::Kms;
                }
                x.resources.push(Res {
                    ty: "AWS::KMS::Key",
                    arn: key_arn,
                    account: Some(self.ctx.account_id.clone()),
                });
            }
            Ev::KmsScheduleKeyDeletion | Ev::KmsDisableKey => {
                let key_arn = self.kms_key_arn();
                let key_id = key_arn.rsplit('/').next().unwrap_or_default().to_owned();
                let days = self.range(7, 30);
                self.obj(|g| {
                    g.j.kv_str("keyId", &key_id);
                    if spec.ev == Ev::KmsScheduleKeyDeletion {
                        g.j.kv_u64("pendingWindowInDays", days);
                    }
                });
                self.j.key("responseElements");
                if error || spec.ev == Ev::KmsDisableKey {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.j.kv_str("keyId", &key_arn);
                        g.kv_human_time("deletionDate", g.time_ms + days as i64 * 86_400_000, true);
                        g.j.kv_str("keyState", "PendingDeletion");
                        g.j.kv_u64("pendingWindowInDays", days);
                    });
                }
                x.resources.push(Res {
                    ty: "AWS::KMS::Key",
                    arn: key_arn,
                    account: Some(self.ctx.account_id.clone()),
                });
            }
            Ev::KmsCreateKey => {
                let tag = self.tag_value();
                self.obj(|g| {
                    g.j.kv_str("description", "Application data key");
                    g.j.kv_str("keyUsage", "ENCRYPT_DECRYPT");
                    g.j.kv_str("keySpec", "SYMMETRIC_DEFAULT");
                    g.j.kv_str("origin", "AWS_KMS");
                    g.j.kv_bool("bypassPolicyLockoutSafetyCheck", false);
                    g.key_arr("tags", |g| {
                        g.obj(|g| {
                            g.j.kv_str("tagKey", "Team");
                            g.j.kv_str("tagValue", tag);
                        })
                    });
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    let key_arn = self.kms_key_arn();
                    self.obj(|g| {
                        g.key_obj("keyMetadata", |g| {
                            g.kv_account("aWSAccountId");
                            let id = key_arn.rsplit('/').next().unwrap_or_default();
                            g.j.kv_str("keyId", id);
                            g.j.kv_str("arn", &key_arn);
                            g.kv_human_time("creationDate", g.time_ms, true);
                            g.j.kv_bool("enabled", true);
                            g.j.kv_str("description", "Application data key");
                            g.j.kv_str("keyUsage", "ENCRYPT_DECRYPT");
                            g.j.kv_str("keyState", "Enabled");
                            g.j.kv_str("origin", "AWS_KMS");
                            g.j.kv_str("keyManager", "CUSTOMER");
                            g.j.kv_str("customerMasterKeySpec", "SYMMETRIC_DEFAULT");
                            g.j.kv_str("keySpec", "SYMMETRIC_DEFAULT");
                            g.key_arr("encryptionAlgorithms", |g| g.j.str("SYMMETRIC_DEFAULT"));
                            g.j.kv_bool("multiRegion", false);
                        })
                    });
                }
            }
            Ev::KmsRotateKey | Ev::KmsDeleteKey => {
                self.j.null();
                self.j.kv_null("responseElements");
                if spec.ev == Ev::KmsDeleteKey {
                    self.key_obj("additionalEventData", |g| {
                        g.j.kv_str("keyMaterialId", "");
                    });
                }
                let key_arn = self.kms_key_arn();
                x.resources.push(Res {
                    ty: "AWS::KMS::Key",
                    arn: key_arn,
                    account: Some(self.ctx.account_id.clone()),
                });
            }
            Ev::CtDescribeTrails => {
                self.obj(|g| {
                    g.key_arr("trailNameList", |_| {});
                    g.j.kv_bool("includeShadowTrails", true);
                });
                self.j.kv_null("responseElements");
            }
            Ev::CtLookupEvents => {
                self.obj(|g| {
                    g.j.kv_u64("maxResults", 50);
                    g.key_arr("lookupAttributes", |g| {
                        g.obj(|g| {
                            g.j.kv_str("attributeKey", "EventName");
                            g.j.kv_str("attributeValue", "ConsoleLogin");
                        })
                    });
                });
                self.j.kv_null("responseElements");
            }
            Ev::CtGetTrailStatus
            | Ev::CtStopLogging
            | Ev::CtStartLogging
            | Ev::CtDeleteTrail
            | Ev::CtUpdateTrail => {
                let trail = format!(
                    "arn:aws:cloudtrail:us-east-1:{}:trail/org-trail",
                    self.ctx.account_id
                );
                let bucket = format!("acme-cloudtrail-archive-{}", self.ctx.account_id);
                self.obj(|g| {
                    g.j.kv_str("name", &trail);
                    if spec.ev == Ev::CtUpdateTrail {
                        g.j.kv_bool("isMultiRegionTrail", true);
                        g.j.kv_bool("includeGlobalServiceEvents", true);
                        g.j.kv_str("s3BucketName", &bucket);
                    }
                });
                self.j.key("responseElements");
                if spec.ev == Ev::CtUpdateTrail && !error {
                    self.obj(|g| {
                        g.j.kv_str("name", "org-trail");
                        g.j.kv_str("s3BucketName", &bucket);
                        g.j.kv_bool("includeGlobalServiceEvents", true);
                        g.j.kv_bool("isMultiRegionTrail", true);
                        g.j.kv_str("trailARN", &trail);
                        let v = g.chance(0.5);
                        g.j.kv_bool("logFileValidationEnabled", v);
                        g.j.kv_bool("isOrganizationTrail", true);
                    });
                } else {
                    self.j.null();
                }
                x.resources.push(Res {
                    ty: "AWS::CloudTrail::Trail",
                    arn: trail,
                    account: Some(self.ctx.account_id.clone()),
                });
            }
            Ev::ConsoleLogin => {
                self.j.null();
                self.key_obj("responseElements", |g| {
                    g.j.kv_str(
                        "ConsoleLogin",
                        if login_failed { "Failure" } else { "Success" },
                    );
                });
                let mfa = actor.kind != IdKind::AssumedRole && self.chance(0.6);
                x.additional = Additional::Console { mfa };
            }
            Ev::LambdaInvoke => {
                let f = self.pick(catalog::FUNCTIONS);
                let arn = format!(
                    "arn:aws:lambda:{}:{}:function:{f}",
                    self.ctx.region, self.ctx.account_id
                );
                self.obj(|g| {
                    g.j.kv_str("functionName", &arn);
                    let it = g.pick(&["RequestResponse", "Event"]);
                    g.j.kv_str("invocationType", it);
                });
                self.j.kv_null("responseElements");
                x.resources.push(Res {
                    ty: "AWS::Lambda::Function",
                    arn: arn.clone(),
                    account: Some(self.ctx.account_id.clone()),
                });
                x.additional = Additional::Lambda { function_arn: arn };
            }
            Ev::LambdaListFunctions => {
                self.obj(|g| g.j.kv_u64("maxItems", 50));
                self.j.kv_null("responseElements");
            }
            Ev::LambdaGetFunction => {
                let f = self.pick(catalog::FUNCTIONS);
                self.obj(|g| g.j.kv_str("functionName", f));
                self.j.kv_null("responseElements");
            }
            Ev::LambdaUpdateFunctionCode => {
                let f = self.pick(catalog::FUNCTIONS);
                self.obj(|g| {
                    g.j.kv_str("functionName", f);
                    g.j.kv_bool("publish", false);
                    g.j.kv_bool("dryRun", false);
                });
                self.j.key("responseElements");
                if error {
                    self.j.null();
                } else {
                    self.obj(|g| {
                        g.j.kv_str("functionName", f);
                        g.j.key("functionArn");
                        g.j.begin_str();
                        g.j.part("arn:aws:lambda:");
                        g.j.part(&g.ctx.region);
                        g.j.part(":");
                        g.j.part(&g.ctx.account_id);
                        g.j.part(":function:");
                        g.j.part(f);
                        g.j.end_str();
                        g.j.kv_str("runtime", "python3.12");
                        let size = g.range(1_000, 50_000_000);
                        g.j.kv_u64("codeSize", size);
                        g.j.kv_str("state", "Pending");
                    });
                }
            }
            Ev::DdbGetItem | Ev::DdbPutItem | Ev::DdbQuery | Ev::DdbDescribeTable => {
                let t = self.pick(catalog::TABLES_DDB);
                self.obj(|g| {
                    g.j.kv_str("tableName", t);
                    match spec.ev {
                        Ev::DdbGetItem | Ev::DdbPutItem => g.key_obj("key", |g| {
                            // DynamoDB data events redact key values.
                            g.j.kv_str("pk", "HIDDEN_DUE_TO_SECURITY_REASONS");
                            g.j.kv_str("sk", "HIDDEN_DUE_TO_SECURITY_REASONS");
                        }),
                        Ev::DdbQuery => {
                            g.j.kv_str("keyConditionExpression", "#pk = :pk");
                            g.key_obj("expressionAttributeNames", |g| g.j.kv_str("#pk", "pk"));
                            g.key_obj("expressionAttributeValues", |g| {
                                g.j.kv_str(":pk", "HIDDEN_DUE_TO_SECURITY_REASONS")
                            });
                            g.j.kv_str("select", "ALL_ATTRIBUTES");
                        }
                        _ => {}
                    }
                });
                self.j.kv_null("responseElements");
                if spec.category == Category::Data {
                    x.resources.push(Res {
                        ty: "AWS::DynamoDB::Table",
                        arn: format!(
                            "arn:aws:dynamodb:{}:{}:table/{t}",
                            self.ctx.region, self.ctx.account_id
                        ),
                        account: Some(self.ctx.account_id.clone()),
                    });
                }
            }
            Ev::OrgListAccounts | Ev::OrgDescribeOrganization => {
                self.j.null();
                self.j.kv_null("responseElements");
            }
            Ev::ConfigDescribeConfigurationRecorders => {
                self.j.null();
                self.j.kv_null("responseElements");
            }
            Ev::ConfigStopConfigurationRecorder => {
                self.obj(|g| g.j.kv_str("configurationRecorderName", "default"));
                self.j.kv_null("responseElements");
            }
            Ev::GuardDutyDeleteDetector => {
                self.obj(|g| g.kv_id("detectorId", "", HEX, 32));
                self.j.kv_null("responseElements");
            }
            Ev::LogsDescribeLogGroups => {
                self.obj(|g| g.j.kv_str("logGroupNamePrefix", "/aws/lambda/"));
                self.j.kv_null("responseElements");
            }
            Ev::LogsCreateLogStream | Ev::LogsPutRetentionPolicy => {
                let f = self.pick(catalog::FUNCTIONS);
                self.obj(|g| {
                    g.j.key("logGroupName");
                    g.j.begin_str();
                    g.j.part("/aws/lambda/");
                    g.j.part(f);
                    g.j.end_str();
                    if spec.ev == Ev::LogsCreateLogStream {
                        g.j.key("logStreamName");
                        g.j.begin_str();
                        Utc::from_ms(g.time_ms).push_ymd(&mut g.j.buf, b"/");
                        g.j.part("/[$LATEST]");
                        g.push_rand(HEX, 32);
                        g.j.end_str();
                    } else {
                        g.j.kv_u64("retentionInDays", 30);
                    }
                });
                self.j.kv_null("responseElements");
            }
            Ev::CwDescribeAlarms => {
                self.obj(|g| g.j.kv_str("stateValue", "ALARM"));
                self.j.kv_null("responseElements");
            }
            Ev::RdsDescribeDbInstances => {
                self.obj(|g| g.j.kv_str("dBInstanceIdentifier", "orders-db"));
                self.j.kv_null("responseElements");
            }
            Ev::EcrGetAuthorizationToken => {
                self.j.null();
                self.j.kv_null("responseElements");
            }
            Ev::SecretsGetSecretValue => {
                self.obj(|g| {
                    g.j.key("secretId");
                    g.j.begin_str();
                    g.j.part("arn:aws:secretsmanager:");
                    g.j.part(&g.ctx.region);
                    g.j.part(":");
                    g.j.part(&g.ctx.account_id);
                    g.j.part(":secret:prod/db/password-");
                    g.push_rand(MIXED_ALNUM, 6);
                    g.j.end_str();
                });
                self.j.kv_null("responseElements");
            }
            Ev::SsmGetParameter => {
                let name = self.pick(&[
                    "/app/prod/db-host",
                    "/app/prod/api-key",
                    "/platform/feature-flags",
                ]);
                self.obj(|g| {
                    g.j.kv_str("name", name);
                    g.j.kv_bool("withDecryption", true);
                });
                self.j.kv_null("responseElements");
            }
        }
        x
    }

    fn response_return(&mut self, error: bool) {
        self.j.key("responseElements");
        if error {
            self.j.null();
        } else {
            self.obj(|g| {
                g.kv_uuid("requestId");
                g.j.kv_bool("_return", true);
            });
        }
    }

    fn bucket_statement(&mut self, bucket: &str, i: u32) {
        self.obj(|g| {
            g.j.key("Sid");
            g.j.begin_str();
            g.j.part("Stmt");
            g.j.part_u64(u64::from(i));
            g.j.end_str();
            let deny = g.chance(0.3);
            g.j.kv_str("Effect", if deny { "Deny" } else { "Allow" });
            if deny {
                g.j.kv_str("Principal", "*");
            } else {
                g.key_obj("Principal", |g| {
                    g.j.key("AWS");
                    g.j.begin_str();
                    g.j.part("arn:aws:iam::");
                    let d = g.range(1, 9);
                    g.j.part_u64(d);
                    g.push_rand(DIGITS, 11);
                    g.j.part(":root");
                    g.j.end_str();
                });
            }
            g.key_arr("Action", |g| {
                let a = g.pick(&["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:*"]);
                g.j.str(a);
            });
            g.key_arr("Resource", |g| {
                g.j.begin_str();
                g.j.part("arn:aws:s3:::");
                g.j.part(bucket);
                g.j.end_str();
                g.j.begin_str();
                g.j.part("arn:aws:s3:::");
                g.j.part(bucket);
                g.j.part("/prefix-");
                g.push_rand(LOWER_ALNUM, 8);
                g.j.part("/*");
                g.j.end_str();
            });
            g.key_obj("Condition", |g| {
                if deny {
                    g.key_obj("Bool", |g| g.j.kv_str("aws:SecureTransport", "false"));
                } else {
                    g.key_obj("StringEquals", |g| {
                        g.j.kv_str("aws:PrincipalOrgID", &g.ctx.org_id)
                    });
                }
            });
        });
    }

    /// An IAM policy document as CloudTrail logs it: pretty-printed JSON
    /// embedded in a string, so it is dense with `\"` and `\n` escapes.
    fn policy_document_string(&mut self) {
        self.j.begin_str();
        self.j
            .part("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [");
        let n = self.range(1, 3) as u32;
        let mut i = 0;
        while self.more(i, n) {
            if i > 0 {
                self.j.part(",");
            }
            self.j.part("\n    {\n      \"Sid\": \"Stmt");
            self.j.part_u64(u64::from(i));
            let deny = self.chance(0.2);
            self.j.part("\",\n      \"Effect\": \"");
            self.j.part(if deny { "Deny" } else { "Allow" });
            self.j.part("\",\n      \"Action\": [");
            let actions = self.range(1, 4);
            for a in 0..actions {
                if a > 0 {
                    self.j.part(",");
                }
                self.j.part("\n        \"");
                let act = self.pick(catalog::ACTIONS);
                self.j.part(act);
                self.j.part("\"");
            }
            self.j
                .part("\n      ],\n      \"Resource\": \"arn:aws:s3:::acme-data-lake-");
            self.j.part(&self.ctx.account_id);
            self.j.part("/team-");
            self.push_rand(LOWER_ALNUM, 6);
            self.j.part("/*\"\n    }");
            i += 1;
        }
        self.j.part("\n  ]\n}");
        self.j.end_str();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn exotic_agents_are_valid_json_string_bodies() {
        // Validity of the pre-escaped literals is checked by parsing a record
        // that embeds each of them.
        for ua in catalog::EXOTIC_AGENTS_ESCAPED {
            let mut j = Json::default();
            j.begin_obj();
            j.key("ua");
            j.str_raw(ua);
            j.end_obj();
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&j.buf);
            assert!(parsed.is_ok(), "invalid escaped literal {ua}");
        }
    }

    #[test]
    fn human_time_formats() {
        let mut b = Vec::new();
        push_human_time(&mut b, crate::DEFAULT_START_TIME_MS + 7_000, false);
        b.push(b'|');
        push_human_time(&mut b, crate::DEFAULT_START_TIME_MS + 13 * 3_600_000, true);
        assert_eq!(
            String::from_utf8_lossy(&b),
            "Nov 1, 2026 12:00:07 AM|Nov 1, 2026, 1:00:00 PM"
        );
    }

    #[test]
    fn at_least_is_honoured_and_natural_stays_small() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut ctx = RecordContext::default();
        for region in ["us-east-1", "eu-west-1"] {
            ctx.region = region.to_owned();
            for target in [1, 5_000, LARGE_MIN_BYTES, 64 * 1024, LARGE_MAX_BYTES] {
                for _ in 0..20 {
                    ctx.size = RecordSize::AtLeast(target);
                    let r = crate::record_json(&mut rng, &ctx);
                    assert!(r.len() >= target, "{} < {target}", r.len());
                    assert!(
                        r.len() < target.max(4096) + 8192,
                        "{} >> {target}: {}",
                        r.len(),
                        String::from_utf8_lossy(&r[..3000])
                    );
                    let v: serde_json::Value =
                        serde_json::from_slice(&r).unwrap_or(serde_json::Value::Null);
                    assert!(v.is_object());
                }
            }
            ctx.size = RecordSize::Natural;
            for _ in 0..5000 {
                let r = crate::record_json(&mut rng, &ctx);
                assert!(
                    r.len() < LARGE_MIN_BYTES / 2,
                    "natural record of {} bytes",
                    r.len()
                );
            }
        }
    }

    #[test]
    fn stable_ids_are_stable() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        push_stable(&mut a, UPPER_ALNUM, 17, &["111111111111", "alice"]);
        push_stable(&mut b, UPPER_ALNUM, 17, &["111111111111", "alice"]);
        assert_eq!(a, b);
        b.clear();
        push_stable(&mut b, UPPER_ALNUM, 17, &["111111111111", "bob"]);
        assert_ne!(a, b);
    }
}
