//! Kubernetes resource quantities (`resource.Quantity`), held exactly.
//!
//! A quantity is a fixed-point number with a suffix: `500m`, `1.5Gi`,
//! `12e6`. [`Quantity`] keeps the value as an `i128` count of nano-units
//! (the finest precision Kubernetes keeps), the [`Format`] its suffix was
//! written in, and renders the text kube-apiserver stores and returns:
//!
//! * Input finer than a nano-unit is rounded away from zero: `0.1n` is `1n`.
//! * Decimal formats print an integer with the largest suffix (or exponent,
//!   always a multiple of three) that keeps it an integer: `0.5` → `500m`,
//!   `1000k` → `1M`, `1e1` → `10`. Past `E` (10^18) decimal SI has no
//!   suffix and prints an exponent: `1000E` → `1e21`.
//! * Binary SI prints the largest of `Ki`…`Ei` that divides the value
//!   (`1.5Gi` → `1536Mi`), but only for whole numbers of at least 1024;
//!   anything else prints as decimal SI (`0.5Ki` → `512`, `1.1Ki` →
//!   `1126400m`). Parsing caps binary SI at 2^63-1 units, as Kubernetes does.
//! * Kubernetes skips canonicalising a parsed string that passes a cheap
//!   "already canonical" test and echoes it as given, so `+1`, `010`, `1.`,
//!   `1.500k` and `1E3` come back unchanged; [`Quantity`] remembers such
//!   text the same way. Arithmetic forgets it.
//!
//! [`canonicalize_object`] rewrites every quantity field of the built-in
//! kinds into that form and reports the invalid ones as field errors.
//!
//! Where this differs from Kubernetes, all far beyond real resource sizes:
//! magnitudes are limited to `i128::MAX` nano-units (about 1.7e29 units;
//! Kubernetes has no bound for decimal input) and larger input is
//! [`QuantityError::TooLarge`]; an `e` exponent is taken at its full `i64`
//! value where Kubernetes wraps it to 32 bits; binary SI output stops at `Ei`
//! (`1024Ei`) where Kubernetes would drop the suffix.
//!
//! Everything here is pure and never panics, whatever the input.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde_json::Value;

/// Result of parsing a quantity.
pub type Result<T, E = QuantityError> = std::result::Result<T, E>;

/// Why a string is not a quantity.
///
/// Every variant describes bad client input; none is worth retrying. The
/// messages of [`Format`](QuantityError::Format) and
/// [`Suffix`](QuantityError::Suffix) are Kubernetes' own. The variants are
/// leaves: there is no underlying error to chain as a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a number followed by suffix characters (includes the
    /// empty string).
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The suffix is well formed but names no unit: `1K`, `1e`, `--1`.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The magnitude does not fit `i128::MAX` nano-units. Kubernetes would
    /// accept it.
    #[error("quantity too large: the magnitude must stay below 1.7e29")]
    TooLarge,
}

/// How a quantity's suffix was written, which decides how it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `n u m k M G T P E` or no suffix, e.g. `12M`.
    #[default]
    DecimalSI,
    /// `Ki Mi Gi Ti Pi Ei`, e.g. `12Mi`.
    BinarySI,
    /// `e<int>` or `E<int>`, e.g. `12e6`.
    DecimalExponent,
}

impl Format {
    /// The name Kubernetes gives the format.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::DecimalSI => "DecimalSI",
            Format::BinarySI => "BinarySI",
            Format::DecimalExponent => "DecimalExponent",
        }
    }
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;
/// Binary SI is capped at 2^63-1 units when parsed.
const BINARY_CAP_NANOS: u128 = (i64::MAX as u128) * (NANOS_PER_UNIT as u128);
/// Suffixes for base-10 exponents -9, -6, …, 18.
const DECIMAL_SUFFIXES: [(i64, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];
/// Suffixes for powers of 1024: 1024^0 … 1024^6.
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// An exact resource quantity.
///
/// Equality, ordering and hashing look at the value only: `1Ki == 1024`.
#[derive(Debug, Clone, Default)]
pub struct Quantity {
    /// The value in nano-units, within `-i128::MAX..=i128::MAX`.
    nanos: i128,
    format: Format,
    /// The parsed text, when Kubernetes would echo it instead of
    /// canonicalising.
    verbatim: Option<Box<str>>,
}

impl Quantity {
    /// Parses the Kubernetes quantity grammar: an optional sign, digits with
    /// an optional fraction (`1.`, `.5` and even `.` are numbers), then a
    /// decimal SI suffix, a binary SI suffix or an exponent.
    ///
    /// No surrounding whitespace is allowed; the JSON decoding in
    /// [`canonicalize_object`] trims it first, as Kubernetes does.
    pub fn parse(text: &str) -> Result<Quantity> {
        if text.is_empty() {
            return Err(QuantityError::Format);
        }
        let parts = Parts::split(text)?;
        let scale = Scale::of_suffix(parts.suffix)?;

        let mut digits = Vec::with_capacity(parts.int.len() + parts.frac.len());
        digits.extend_from_slice(parts.int.as_bytes());
        digits.extend_from_slice(parts.frac.as_bytes());
        let frac_len = parts.frac.len() as i128;

        let (magnitude, format) = match scale {
            Scale::Pow10(exponent, format) => {
                let magnitude = nanos_of_digits(&digits, i128::from(exponent) - frac_len + 9)
                    .filter(|m| *m <= i128::MAX as u128)
                    .ok_or(QuantityError::TooLarge)?;
                (magnitude, format)
            }
            Scale::Pow2(bits) => {
                let magnitude = nanos_of_digits(&times_pow2(&digits, bits), 9 - frac_len)
                    .map_or(BINARY_CAP_NANOS, |m| m.min(BINARY_CAP_NANOS));
                // A fraction of one unit cannot be binary.
                let format = if magnitude > 0 && magnitude < NANOS_PER_UNIT as u128 {
                    Format::DecimalSI
                } else {
                    Format::BinarySI
                };
                (magnitude, format)
            }
        };
        // Both branches keep the magnitude within i128::MAX.
        let nanos = magnitude as i128;
        let verbatim = parts.kept_verbatim(scale).then(|| Box::from(text));
        Ok(Quantity {
            nanos: if parts.negative { -nanos } else { nanos },
            format,
            verbatim,
        })
    }

    /// `milli / 1000` units, in decimal SI (saturating).
    pub fn from_milli(milli: i128) -> Quantity {
        Quantity::from_nanos(milli.saturating_mul(NANOS_PER_MILLI), Format::DecimalSI)
    }

    /// `bytes` units, in binary SI (saturating).
    pub fn from_bytes(bytes: i128) -> Quantity {
        Quantity::from_nanos(bytes.saturating_mul(NANOS_PER_UNIT), Format::BinarySI)
    }

    /// `nanos / 10^9` units in the given format (saturating).
    pub fn from_nanos(nanos: i128, format: Format) -> Quantity {
        Quantity {
            nanos: clamp(nanos),
            format,
            verbatim: None,
        }
    }

    /// The format the quantity prints in (before the binary-SI fallbacks).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The exact value in nano-units.
    pub fn nano_value(&self) -> i128 {
        self.nanos
    }

    /// The value in units, rounded away from zero: `1.5` → 2, `-1.5` → -2.
    pub fn value(&self) -> i128 {
        div_away_from_zero(self.nanos, NANOS_PER_UNIT)
    }

    /// The value in thousandths, rounded away from zero: `1.5n` → 1.
    pub fn milli_value(&self) -> i128 {
        div_away_from_zero(self.nanos, NANOS_PER_MILLI)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// `self + other`, saturating. The result keeps `self`'s format unless
    /// `self` is zero, then it takes `other`'s, as Kubernetes does.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity::from_nanos(self.nanos.saturating_add(other.nanos), self.sum_format(other))
    }

    /// `self - other`, saturating; formats as for [`Quantity::add`].
    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity::from_nanos(self.nanos.saturating_sub(other.nanos), self.sum_format(other))
    }

    fn sum_format(&self, other: &Quantity) -> Format {
        if self.is_zero() { other.format } else { self.format }
    }

    /// The text kube-apiserver would store and return for this quantity;
    /// the same as `to_string()`.
    pub fn to_canonical(&self) -> String {
        self.to_string()
    }
}

/// Clamps to the symmetric range, so negation never overflows.
fn clamp(nanos: i128) -> i128 {
    nanos.max(-i128::MAX)
}

fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    q + r.signum()
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Quantity> {
        Quantity::parse(text)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = &self.verbatim {
            return f.write_str(text);
        }
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let unit = NANOS_PER_UNIT as u128;

        if self.format == Format::BinarySI && magnitude >= 1024 * unit && magnitude.is_multiple_of(unit) {
            let mut units = magnitude / unit;
            let mut power = 0;
            while power + 1 < BINARY_SUFFIXES.len() && units.is_multiple_of(1024) {
                units /= 1024;
                power += 1;
            }
            return write!(f, "{sign}{units}{}", BINARY_SUFFIXES[power]);
        }

        // Decimal: strip factors of ten, then step the exponent down to a
        // multiple of three. That never exceeds the original magnitude.
        let mut mantissa = magnitude;
        let mut exponent: i64 = -9;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exponent += 1;
        }
        let extra = exponent.rem_euclid(3);
        mantissa *= 10u128.pow(extra as u32);
        exponent -= extra;

        let named = DECIMAL_SUFFIXES.iter().find(|(e, _)| *e == exponent).map(|(_, s)| *s);
        match (self.format, named) {
            (Format::DecimalExponent, _) if exponent == 0 => write!(f, "{sign}{mantissa}"),
            (Format::DecimalSI | Format::BinarySI, Some(suffix)) => write!(f, "{sign}{mantissa}{suffix}"),
            _ => write!(f, "{sign}{mantissa}e{exponent}"),
        }
    }
}

/// The pieces of a quantity string, following Kubernetes' scanner.
struct Parts<'a> {
    negative: bool,
    /// Integer digits without leading zeros.
    int: &'a str,
    /// Fraction digits as written.
    frac: &'a str,
    suffix: &'a str,
}

impl<'a> Parts<'a> {
    fn split(text: &'a str) -> Result<Parts<'a>> {
        let bytes = text.as_bytes();
        let skip =
            |from: usize, pred: &dyn Fn(u8) -> bool| from + bytes[from..].iter().take_while(|b| pred(**b)).count();
        let is_digit = |b: u8| b.is_ascii_digit();

        let (negative, start) = match bytes.first() {
            Some(b'-') => (true, 1),
            Some(b'+') => (false, 1),
            _ => (false, 0),
        };
        let int_end = skip(start, &is_digit);
        let (frac, number_end) = if bytes.get(int_end) == Some(&b'.') {
            let end = skip(int_end + 1, &is_digit);
            (&text[int_end + 1..end], end)
        } else {
            ("", int_end)
        };
        // Suffix: letters from the unit alphabet, then an optional signed
        // integer. Every index so far sits after ASCII bytes, so slicing at it
        // is safe.
        let mut end = skip(number_end, &|b| b"eEinumkKMGTP".contains(&b));
        if matches!(bytes.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        end = skip(end, &is_digit);
        if end != bytes.len() {
            return Err(QuantityError::Format);
        }
        Ok(Parts {
            negative,
            int: text[start..int_end].trim_start_matches('0'),
            frac,
            suffix: &text[number_end..],
        })
    }

    /// Kubernetes' "already canonical" test, under which it keeps the input
    /// text: a fast-path value whose digits already look canonical.
    fn kept_verbatim(&self, scale: Scale) -> bool {
        let num = if self.int.is_empty() { "0" } else { self.int };
        match scale {
            Scale::Pow10(exponent, _) => {
                let exponent = exponent - self.frac.len() as i64;
                num.len() + self.frac.len() <= 18
                    && exponent >= -9
                    && exponent % 3 == 0
                    && !num.starts_with('0')
                    && !format!("{num}{}", self.frac).ends_with("000")
            }
            Scale::Pow2(bits) => {
                // Allowed digits: 11 for Ki, 8 Mi, 5 Gi, 2 Ti, none beyond.
                let max_digits = 14 - i64::from(bits) * 3 / 10;
                self.frac.is_empty()
                    && (num.len() as i64) <= max_digits
                    && num.parse::<u64>().is_ok_and(|n| !n.is_multiple_of(8))
            }
        }
    }
}

/// What a suffix multiplies by.
#[derive(Clone, Copy)]
enum Scale {
    /// 10^exponent; decimal SI or decimal exponent.
    Pow10(i64, Format),
    /// 2^bits; binary SI.
    Pow2(u32),
}

impl Scale {
    fn of_suffix(suffix: &str) -> Result<Scale> {
        if let Some((exponent, _)) = DECIMAL_SUFFIXES.iter().find(|(_, s)| *s == suffix) {
            return Ok(Scale::Pow10(*exponent, Format::DecimalSI));
        }
        if let Some(power) = BINARY_SUFFIXES.iter().skip(1).position(|s| *s == suffix) {
            return Ok(Scale::Pow2(10 * (power as u32 + 1)));
        }
        match suffix.split_at_checked(1) {
            // Go's ParseInt and Rust's agree: optional sign, then digits.
            Some(("e" | "E", exponent)) if !exponent.is_empty() => exponent
                .parse::<i64>()
                .map(|e| Scale::Pow10(e, Format::DecimalExponent))
                .map_err(|_| QuantityError::Suffix),
            _ => Err(QuantityError::Suffix),
        }
    }
}

/// `digits × 10^pow10`, rounded away from zero to an integer; `None` if it
/// does not fit a `u128`. Linear in the number of digits.
fn nanos_of_digits(digits: &[u8], pow10: i128) -> Option<u128> {
    let Some(first) = digits.iter().position(|d| *d != b'0') else {
        return Some(0);
    };
    let digits = &digits[first..];
    let accumulate = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0u128, |n, d| n.checked_mul(10)?.checked_add(u128::from(d - b'0')))
    };
    let len = digits.len() as i128;
    // u128::MAX has 39 digits and the leading digit is not zero.
    if pow10 >= 0 {
        if len + pow10 > 39 {
            return None;
        }
        accumulate(digits)?.checked_mul(10u128.checked_pow(pow10 as u32)?)
    } else {
        let kept = len + pow10;
        if kept <= 0 {
            // All digits are below the unit, and at least one is not zero.
            return Some(1);
        }
        if kept > 39 {
            return None;
        }
        let (head, tail) = digits.split_at(kept as usize);
        let rounded = u128::from(tail.iter().any(|d| *d != b'0'));
        accumulate(head)?.checked_add(rounded)
    }
}

/// The decimal digits of `digits × 2^bits` (bits ≤ 60).
fn times_pow2(digits: &[u8], bits: u32) -> Vec<u8> {
    let factor = 1u128 << bits;
    let mut out = Vec::with_capacity(digits.len() + 20);
    let mut carry = 0u128;
    for d in digits.iter().rev() {
        let v = u128::from(d - b'0') * factor + carry;
        out.push(b'0' + (v % 10) as u8);
        carry = v / 10;
    }
    while carry > 0 {
        out.push(b'0' + (carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    out
}

/// A field error: the field path (`spec.containers[0].resources.limits[cpu]`)
/// and the full `FieldValueInvalid` cause message
/// (`Invalid value: "1Kb": quantities must match …`).
pub type FieldError = (String, String);

/// Rewrites every quantity field of a built-in object to canonical text.
///
/// Strings are trimmed and parsed; JSON numbers (`"cpu": 1`, `0.5`) are
/// accepted and become strings; a `null` inside a quantity map becomes `"0"`
/// (Go's zero quantity), a `null` single field is left alone. Every other
/// value is an error. Kinds without quantity fields are left untouched.
///
/// Covered: pod specs (containers', init and ephemeral containers'
/// `resources.limits/requests`, `overhead`, pod-level `resources`, emptyDir
/// `sizeLimit`, ephemeral volume claim templates) in Pods, PodTemplates,
/// ReplicationControllers, Deployments, ReplicaSets, DaemonSets,
/// StatefulSets (and their `volumeClaimTemplates`), Jobs and CronJobs; pod
/// status container `allocatedResources` and `resources`; Node
/// `status.capacity/allocatable`; ResourceQuota `spec.hard`,
/// `status.hard/used`; LimitRange limits; PersistentVolumeClaim
/// `spec.resources` and `status.capacity/allocatedResources`;
/// PersistentVolume `spec.capacity`.
///
/// On error the object may be partly rewritten; the caller rejects it with
/// 422 Invalid, one `FieldValueInvalid` cause per returned error.
pub fn canonicalize_object(group: &str, kind: &str, obj: &mut Value) -> std::result::Result<(), Vec<FieldError>> {
    let mut walk = Walk::default();
    match (group, kind) {
        ("", "Pod") => {
            walk.pod_spec(child(obj, "spec"), "spec");
            walk.pod_status(child(obj, "status"), "status");
        }
        ("", "PodTemplate") => walk.pod_spec(at(obj, &["template", "spec"]), "template.spec"),
        ("", "ReplicationController") | ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") | ("batch", "Job") => {
            walk.pod_spec(at(obj, &["spec", "template", "spec"]), "spec.template.spec")
        }
        ("apps", "StatefulSet") => {
            walk.pod_spec(at(obj, &["spec", "template", "spec"]), "spec.template.spec");
            walk.each(
                at(obj, &["spec", "volumeClaimTemplates"]),
                "spec.volumeClaimTemplates",
                |walk, claim, path| walk.claim_spec(child(claim, "spec"), &format!("{path}.spec")),
            );
        }
        ("batch", "CronJob") => walk.pod_spec(
            at(obj, &["spec", "jobTemplate", "spec", "template", "spec"]),
            "spec.jobTemplate.spec.template.spec",
        ),
        ("", "Node") => {
            walk.map(at(obj, &["status", "capacity"]), "status.capacity");
            walk.map(at(obj, &["status", "allocatable"]), "status.allocatable");
        }
        ("", "ResourceQuota") => {
            walk.map(at(obj, &["spec", "hard"]), "spec.hard");
            walk.map(at(obj, &["status", "hard"]), "status.hard");
            walk.map(at(obj, &["status", "used"]), "status.used");
        }
        ("", "LimitRange") => walk.each(at(obj, &["spec", "limits"]), "spec.limits", |walk, item, path| {
            for key in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
                walk.map(child(item, key), &format!("{path}.{key}"));
            }
        }),
        ("", "PersistentVolumeClaim") => {
            walk.claim_spec(child(obj, "spec"), "spec");
            walk.map(at(obj, &["status", "capacity"]), "status.capacity");
            walk.map(at(obj, &["status", "allocatedResources"]), "status.allocatedResources");
        }
        ("", "PersistentVolume") => walk.map(at(obj, &["spec", "capacity"]), "spec.capacity"),
        _ => {}
    }
    if walk.errors.is_empty() {
        Ok(())
    } else {
        Err(walk.errors)
    }
}

fn child<'v>(value: &'v mut Value, key: &str) -> Option<&'v mut Value> {
    value.as_object_mut()?.get_mut(key)
}

fn at<'v>(value: &'v mut Value, keys: &[&str]) -> Option<&'v mut Value> {
    keys.iter().try_fold(value, |v, key| child(v, key))
}

/// Collects field errors while visiting quantity fields. Fields that are
/// missing or of the wrong shape are skipped: schema checks report those.
#[derive(Debug, Default)]
struct Walk {
    errors: Vec<FieldError>,
}

impl Walk {
    fn pod_spec(&mut self, spec: Option<&mut Value>, path: &str) {
        let Some(spec) = spec else { return };
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            self.each(child(spec, list), &format!("{path}.{list}"), |walk, container, path| {
                walk.requirements(child(container, "resources"), &format!("{path}.resources"));
            });
        }
        self.map(child(spec, "overhead"), &format!("{path}.overhead"));
        self.requirements(child(spec, "resources"), &format!("{path}.resources"));
        self.each(
            child(spec, "volumes"),
            &format!("{path}.volumes"),
            |walk, volume, path| {
                walk.single(
                    at(volume, &["emptyDir", "sizeLimit"]),
                    &format!("{path}.emptyDir.sizeLimit"),
                );
                walk.claim_spec(
                    at(volume, &["ephemeral", "volumeClaimTemplate", "spec"]),
                    &format!("{path}.ephemeral.volumeClaimTemplate.spec"),
                );
            },
        );
    }

    fn pod_status(&mut self, status: Option<&mut Value>, path: &str) {
        let Some(status) = status else { return };
        for list in [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ] {
            self.each(
                child(status, list),
                &format!("{path}.{list}"),
                |walk, container, path| {
                    walk.map(
                        child(container, "allocatedResources"),
                        &format!("{path}.allocatedResources"),
                    );
                    walk.requirements(child(container, "resources"), &format!("{path}.resources"));
                },
            );
        }
    }

    fn claim_spec(&mut self, spec: Option<&mut Value>, path: &str) {
        let Some(spec) = spec else { return };
        self.requirements(child(spec, "resources"), &format!("{path}.resources"));
    }

    /// A `ResourceRequirements`-shaped object: `limits` and `requests` maps.
    fn requirements(&mut self, resources: Option<&mut Value>, path: &str) {
        let Some(resources) = resources else { return };
        self.map(child(resources, "limits"), &format!("{path}.limits"));
        self.map(child(resources, "requests"), &format!("{path}.requests"));
    }

    fn each(&mut self, list: Option<&mut Value>, path: &str, mut visit: impl FnMut(&mut Walk, &mut Value, &str)) {
        let Some(Value::Array(items)) = list else { return };
        for (i, item) in items.iter_mut().enumerate() {
            visit(self, item, &format!("{path}[{i}]"));
        }
    }

    fn map(&mut self, map: Option<&mut Value>, path: &str) {
        let Some(Value::Object(map)) = map else { return };
        for (key, value) in map.iter_mut() {
            if value.is_null() {
                *value = Value::String("0".to_owned());
            } else {
                self.single(Some(value), &format!("{path}[{key}]"));
            }
        }
    }

    fn single(&mut self, value: Option<&mut Value>, path: &str) {
        let Some(value) = value else { return };
        let parsed = match &*value {
            Value::Null => return,
            Value::String(text) => Quantity::parse(text.trim()),
            Value::Number(number) => Quantity::parse(&number.to_string()),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => Err(QuantityError::Format),
        };
        match parsed {
            Ok(quantity) => *value = Value::String(quantity.to_string()),
            Err(error) => {
                let shown = match &*value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                self.errors
                    .push((path.to_owned(), format!("Invalid value: \"{shown}\": {error}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn parses_and_prints_canonically() {
        use QuantityError::{Format as F, Suffix as S, TooLarge as L};
        let table: &[(&str, std::result::Result<&str, QuantityError>)] = &[
            // The brief's and Kubernetes' documented examples.
            ("0.5", Ok("500m")),
            ("1000m", Ok("1")),
            ("1.5", Ok("1500m")),
            ("1.5Gi", Ok("1536Mi")),
            ("1024Mi", Ok("1Gi")),
            ("1e3", Ok("1e3")),
            ("100M", Ok("100M")),
            ("0.1", Ok("100m")),
            ("1.0", Ok("1")),
            ("12e6", Ok("12e6")),
            ("1000k", Ok("1M")),
            ("1000M", Ok("1G")),
            ("1Ki", Ok("1Ki")),
            ("1Mi", Ok("1Mi")),
            ("1Gi", Ok("1Gi")),
            ("300Mi", Ok("300Mi")),
            ("307200Ki", Ok("300Mi")),
            ("1025024Mi", Ok("1001Gi")),
            ("1024Gi", Ok("1Ti")),
            ("1536Ki", Ok("1536Ki")),
            ("0.001T", Ok("1G")),
            ("1000u", Ok("1m")),
            ("1.08", Ok("1080m")),
            ("1080000000n", Ok("1080m")),
            ("1.2345", Ok("1234500u")),
            ("100.0350k", Ok("100035")),
            ("0.0005k", Ok("500m")),
            ("1.01E", Ok("1010P")),
            ("1e1", Ok("10")),
            ("1.2e3", Ok("1200")),
            ("0.5e0", Ok("500e-3")),
            ("0.001e0", Ok("1e-3")),
            (".001e12", Ok("1e9")),
            ("1000e-12", Ok("1e-9")),
            ("300e6", Ok("300e6")),
            ("1000E", Ok("1e21")),
            ("5000E", Ok("5e21")),
            ("100E", Ok("100E")),
            ("1e21", Ok("1e21")),
            // Zero, however written, is "0".
            ("0", Ok("0")),
            ("0n", Ok("0")),
            ("0Ki", Ok("0")),
            ("-0", Ok("0")),
            ("00.000", Ok("0")),
            (".", Ok("0")),
            ("0e9", Ok("0")),
            // Binary SI only for whole numbers of at least 1024.
            ("0.5Ki", Ok("512")),
            ("1.1Ki", Ok("1126400m")),
            (".001Ki", Ok("1024m")),
            (".000000001Ki", Ok("1024n")),
            (".000000000001Ki", Ok("2n")),
            ("1.5Ki", Ok("1536")),
            ("7Ei", Ok("7Ei")),
            ("9Ei", Ok("9223372036854775807")),
            ("9223372036854775807Ki", Ok("9223372036854775807")),
            (
                "99999999999999999999999999999999999999999999Ei",
                Ok("9223372036854775807"),
            ),
            // Precision below nano rounds away from zero.
            ("0.1n", Ok("1n")),
            ("3.001n", Ok("4n")),
            ("0.0000000001", Ok("1n")),
            ("0.00000012345", Ok("124n")),
            ("1.1E-9", Ok("2e-9")),
            ("0.5e-9", Ok("1e-9")),
            ("1e-20", Ok("1e-9")),
            ("-0.1n", Ok("-1n")),
            ("1e-9999999999999", Ok("1e-9")),
            // Negatives.
            ("-1.5Gi", Ok("-1536Mi")),
            ("-1024Mi", Ok("-1Gi")),
            ("-500m", Ok("-500m")),
            ("-0.5Ki", Ok("-512")),
            // Text Kubernetes echoes because it passes its canonical test.
            ("+1", Ok("+1")),
            ("010", Ok("010")),
            ("1.", Ok("1.")),
            ("1.G", Ok("1.G")),
            ("1.500k", Ok("1.500k")),
            ("100.035k", Ok("100.035k")),
            ("1E3", Ok("1E3")),
            ("1e+3", Ok("1e+3")),
            ("+1Ki", Ok("+1Ki")),
            ("100Ti", Ok("100Ti")),
            // ... and text it does not.
            ("+1000", Ok("1k")),
            ("01.5", Ok("1500m")),
            ("1E+6", Ok("1E+6")),
            ("1.3E+6", Ok("1300e3")),
            ("0100Ti", Ok("100Ti")),
            // Large but representable.
            ("1e29", Ok("100e27")),
            (
                "170141183460469231731687303715.884105727",
                Ok("170141183460469231731687303715884105727n"),
            ),
            // Errors.
            ("", Err(F)),
            ("1.2.3", Err(F)),
            ("abc", Err(F)),
            ("1Kb", Err(F)),
            (" 1", Err(F)),
            ("1 ", Err(F)),
            ("1.1.M", Err(F)),
            ("1+1.0M", Err(F)),
            ("0.1am", Err(F)),
            ("1e3e3", Err(F)),
            ("1e3.5", Err(F)),
            ("１", Err(F)),
            ("1µ", Err(F)),
            ("--1", Err(S)),
            ("1K", Err(S)),
            ("1ki", Err(S)),
            ("1e", Err(S)),
            ("1e+", Err(S)),
            ("1i", Err(S)),
            (".5i", Err(S)),
            ("0.1mi", Err(S)),
            ("-3.01e-", Err(S)),
            ("1Mi-1", Err(S)),
            ("1kk", Err(S)),
            ("1e99999999999999999999", Err(S)),
            ("1e30", Err(L)),
            ("1e9999999999999", Err(L)),
            ("1000000000000000000000000000000", Err(L)),
            ("170141183460469231731687303715.884105728", Err(L)),
        ];
        assert!(table.len() >= 40);
        for (input, expected) in table {
            let got = Quantity::parse(input).map(|q| q.to_canonical());
            assert_eq!(got.as_deref().map_err(|e| *e), *expected, "input {input:?}");
        }
    }

    #[test]
    fn error_messages_are_kubernetes_own() {
        assert_eq!(
            Quantity::parse("1Kb").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            Quantity::parse("1K").unwrap_err().to_string(),
            "unable to parse quantity's suffix"
        );
    }

    #[test]
    fn formats_follow_the_suffix() {
        assert_eq!(q("1Ki").format(), Format::BinarySI);
        assert_eq!(q("0.5Ki").format(), Format::BinarySI);
        assert_eq!(q("0.5n").format(), Format::DecimalSI);
        assert_eq!(q(".000000000001Ki").format(), Format::DecimalSI);
        assert_eq!(q("1e3").format(), Format::DecimalExponent);
        assert_eq!(q("1").format(), Format::DecimalSI);
        assert_eq!(q("1k").format().as_str(), "DecimalSI");
    }

    /// Pseudo-random strings over the grammar's alphabet: parsing never
    /// panics, and whatever parses prints as text that parses back to the
    /// same value and prints the same again.
    #[test]
    fn any_input_is_safe_and_output_is_stable() {
        let alphabet = b"0123456789.+-eEinumkKMGTP 0019.";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let len = (next() % 12) as usize;
            let text: String = (0..len)
                .map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize]))
                .collect();
            let Ok(parsed) = Quantity::parse(&text) else { continue };
            let printed = parsed.to_string();
            let again = Quantity::parse(&printed).unwrap_or_else(|e| panic!("{text:?} -> {printed:?}: {e}"));
            assert_eq!(again, parsed, "{text:?} -> {printed:?}");
            assert_eq!(again.to_string(), printed, "{text:?}");
        }
        for text in [
            "9".repeat(100_000),
            format!("0.{}1", "0".repeat(100_000)),
            format!("1e{}", i64::MAX),
        ] {
            let _ = Quantity::parse(&text);
        }
        assert_eq!(q(&format!("0.{}1Ei", "0".repeat(100_000))).to_string(), "1n");
    }

    #[test]
    fn compares_across_formats() {
        assert!(q("1Gi") > q("1G"));
        assert!(q("1Mi") < q("1.1M"));
        assert!(q("999m") < q("1"));
        assert!(q("-1") < q("1n"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("0"), Quantity::default());
        let mut sorted = [q("1Gi"), q("1G"), q("100m"), q("1e3"), q("0"), q("-1Ki")];
        sorted.sort();
        let printed: Vec<String> = sorted.iter().map(Quantity::to_string).collect();
        assert_eq!(printed, ["-1Ki", "0", "100m", "1e3", "1G", "1Gi"]);
    }

    #[test]
    fn adds_and_subtracts_exactly() {
        let one = q("500m").add(&q("0.5"));
        assert_eq!(one, q("1"));
        assert_eq!(one.to_string(), "1");
        assert_eq!(q("1Gi").add(&q("512Mi")).to_string(), "1536Mi");
        assert_eq!(q("1Gi").add(&q("1G")).to_string(), "2073741824");
        assert_eq!(q("100m").add(&q("1Ki")).to_string(), "1024100m");
        assert_eq!(q("1Gi").sub(&q("1Gi")).to_string(), "0");
        assert!(q("1Gi").sub(&q("1Gi")).is_zero());
        assert_eq!(q("1").sub(&q("1500m")).to_string(), "-500m");
        // A zero left side takes the right side's format.
        assert_eq!(q("0").add(&q("1Gi")).to_string(), "1Gi");
        assert_eq!(q("1Gi").add(&q("0")).to_string(), "1Gi");
        assert_eq!(q("0").sub(&q("1Gi")).to_string(), "-1Gi");
        assert_eq!(q("0").add(&q("1e3")).to_string(), "1e3");
        // Remembered text is dropped by arithmetic.
        assert_eq!(q("+1").add(&q("0")).to_string(), "1");
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let max = Quantity::from_bytes(i128::MAX);
        let min = Quantity::from_bytes(i128::MIN);
        assert_eq!(max.nano_value(), i128::MAX);
        assert_eq!(min.nano_value(), -i128::MAX);
        assert_eq!(max.add(&max), max);
        assert_eq!(min.sub(&max), min);
        assert_eq!(min.add(&min).sub(&max).to_string(), min.to_string());
        assert_eq!(Quantity::from_milli(i128::MIN).nano_value(), -i128::MAX);
        assert_eq!(max.value(), i128::MAX / 1_000_000_000 + 1);
        assert_eq!(min.milli_value(), -(i128::MAX / 1_000_000) - 1);
        assert_eq!(max.to_string(), "170141183460469231731687303715884105727n");
    }

    #[test]
    fn converts_to_and_from_integers() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1.0001m").milli_value(), 2);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("0").value(), 0);
        assert_eq!(Quantity::from_milli(1500).to_string(), "1500m");
        assert_eq!(Quantity::from_milli(2000).to_string(), "2");
        assert_eq!(Quantity::from_milli(1).to_string(), "1m");
        assert_eq!(Quantity::from_bytes(1 << 30).to_string(), "1Gi");
        assert_eq!(Quantity::from_bytes(1000).to_string(), "1k");
        assert_eq!(Quantity::from_bytes(1025).to_string(), "1025");
        assert_eq!(Quantity::from_bytes(3 << 20).value(), 3 << 20);
        assert_eq!("250m".parse::<Quantity>(), Ok(Quantity::from_milli(250)));
    }

    #[test]
    fn canonicalizes_a_deployment() {
        let mut deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"cpu": "0.5"}},
            "spec": {"template": {"spec": {
                "containers": [{
                    "name": "app",
                    "resources": {
                        "limits": {"cpu": 1, "memory": "1024Mi", "nvidia.com/gpu": " 1 "},
                        "requests": {"cpu": 0.25, "memory": "1.5Gi", "ephemeral-storage": null}
                    }
                }],
                "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "1000m"}}}],
                "overhead": {"cpu": "0.1"},
                "resources": {"limits": {"memory": "2048Mi"}},
                "volumes": [
                    {"name": "scratch", "emptyDir": {"sizeLimit": "0.5Gi"}},
                    {"name": "cache", "emptyDir": {}}
                ]
            }}}
        });
        canonicalize_object("apps", "Deployment", &mut deployment).unwrap();
        let spec = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["resources"],
            json!({
                "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                "requests": {"cpu": "250m", "memory": "1536Mi", "ephemeral-storage": "0"}
            })
        );
        assert_eq!(spec["initContainers"][0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(spec["overhead"]["cpu"], "100m");
        assert_eq!(spec["resources"]["limits"]["memory"], "2Gi");
        assert_eq!(spec["volumes"][0]["emptyDir"]["sizeLimit"], "512Mi");
        assert_eq!(spec["volumes"][1]["emptyDir"], json!({}));
        // Not a quantity field.
        assert_eq!(deployment["metadata"]["annotations"]["cpu"], "0.5");

        let mut bad = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"limits": {"memory": "1Kb", "cpu": true}}}
        ]}}}});
        let mut errors = canonicalize_object("apps", "Deployment", &mut bad).unwrap_err();
        errors.sort();
        assert_eq!(
            errors,
            [
                (
                    "spec.template.spec.containers[1].resources.limits[cpu]".to_owned(),
                    "Invalid value: \"true\": quantities must match the regular expression \
                     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                        .to_owned()
                ),
                (
                    "spec.template.spec.containers[1].resources.limits[memory]".to_owned(),
                    "Invalid value: \"1Kb\": quantities must match the regular expression \
                     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn canonicalizes_a_node() {
        let mut node = json!({
            "kind": "Node",
            "metadata": {"name": "n1"},
            "status": {
                "capacity": {"cpu": "4", "memory": "16384Mi", "pods": "110", "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": "3900m", "memory": "15.5Gi", "hugepages-2Mi": "0"}
            }
        });
        canonicalize_object("", "Node", &mut node).unwrap();
        assert_eq!(
            node["status"],
            json!({
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": "3900m", "memory": "15872Mi", "hugepages-2Mi": "0"}
            })
        );
        let mut bad = json!({"status": {"allocatable": {"cpu": "4 cores"}}});
        let errors = canonicalize_object("", "Node", &mut bad).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "status.allocatable[cpu]");
    }

    #[test]
    fn canonicalizes_other_kinds() {
        let mut cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"resources": {"requests": {"memory": "1000Ki"}}}]
        }}}}}});
        canonicalize_object("batch", "CronJob", &mut cron).unwrap();
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"],
            "1000Ki"
        );

        let mut pod = json!({
            "spec": {"ephemeralContainers": [{"resources": {"limits": {"cpu": "0.2"}}}]},
            "status": {"containerStatuses": [{"allocatedResources": {"cpu": "0.2"}}]}
        });
        canonicalize_object("", "Pod", &mut pod).unwrap();
        assert_eq!(
            pod["spec"]["ephemeralContainers"][0]["resources"]["limits"]["cpu"],
            "200m"
        );
        assert_eq!(
            pod["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
            "200m"
        );

        let mut quota = json!({"spec": {"hard": {"pods": "10", "requests.memory": "1024Mi"}},
                               "status": {"used": {"requests.memory": 0}}});
        canonicalize_object("", "ResourceQuota", &mut quota).unwrap();
        assert_eq!(quota["spec"]["hard"], json!({"pods": "10", "requests.memory": "1Gi"}));
        assert_eq!(quota["status"]["used"]["requests.memory"], "0");

        let mut limits = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2000m"},
                                "defaultRequest": {"cpu": "0.1"}, "maxLimitRequestRatio": {"cpu": 4}}]}});
        canonicalize_object("", "LimitRange", &mut limits).unwrap();
        assert_eq!(limits["spec"]["limits"][0]["max"]["cpu"], "2");
        assert_eq!(limits["spec"]["limits"][0]["defaultRequest"]["cpu"], "100m");
        assert_eq!(limits["spec"]["limits"][0]["maxLimitRequestRatio"]["cpu"], "4");

        let mut claim = json!({"spec": {"resources": {"requests": {"storage": "1.5Gi"}}}});
        canonicalize_object("", "PersistentVolumeClaim", &mut claim).unwrap();
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1536Mi");

        let mut sts =
            json!({"spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "x"}}}}]}});
        let errors = canonicalize_object("apps", "StatefulSet", &mut sts).unwrap_err();
        assert_eq!(
            errors[0].0,
            "spec.volumeClaimTemplates[0].spec.resources.requests[storage]"
        );

        let mut config = json!({"data": {"cpu": "0.5"}});
        canonicalize_object("", "ConfigMap", &mut config).unwrap();
        assert_eq!(config, json!({"data": {"cpu": "0.5"}}));
    }
}
