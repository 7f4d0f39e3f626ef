//! [`Cidr`]: an address range as an `ipBlock` names it, read the way
//! kube-apiserver reads `cidr` and `except` (its "sloppy" CIDR parser).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::{Error, Result};

/// An IPv4 or IPv6 network: an address with its host bits cleared and a
/// prefix length.
///
/// Parsed as kube-apiserver parses `ipBlock.cidr` (Go's `ParseCIDR` before
/// Go 1.17, which Kubernetes keeps for old objects):
///
/// * host bits may be set and are cleared: `10.1.2.3/8` is `10.0.0.0/8`;
/// * IPv4 parts may have leading zeros, read as decimal: `010.0.0.0/8` is
///   `10.0.0.0/8`; the prefix may too (`10.0.0.0/08`);
/// * an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4
///   network it maps (`10.0.0.0/8`), as Go matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `address` with `prefix` leading bits; `None` when the
    /// prefix is longer than the address.
    pub fn new(address: IpAddr, prefix: u8) -> Option<Cidr> {
        match address {
            IpAddr::V4(v4) if prefix <= 32 => Some(Cidr {
                network: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix))),
                prefix,
            }),
            IpAddr::V6(v6) if prefix <= 128 => {
                let network = Ipv6Addr::from(u128::from(v6) & mask_v6(prefix));
                Some(match network.to_ipv4_mapped() {
                    Some(v4) if prefix >= 96 => Cidr {
                        network: IpAddr::V4(v4),
                        prefix: prefix - 96,
                    },
                    _ => Cidr {
                        network: IpAddr::V6(network),
                        prefix,
                    },
                })
            }
            _ => None,
        }
    }

    /// The first address of the network.
    pub fn network(self) -> IpAddr {
        self.network
    }

    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address is taken
    /// as the IPv4 address it maps; otherwise the families must agree.
    pub fn contains(self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => u32::from(ip) & mask_v4(self.prefix) == u32::from(network),
            (IpAddr::V6(network), IpAddr::V6(ip)) => u128::from(ip) & mask_v6(self.prefix) == u128::from(network),
            _ => false,
        }
    }

    /// Whether `other` lies inside this network and is smaller than it: what
    /// kube-apiserver asks of each `except` entry ("a strict subset of
    /// `cidr`").
    pub fn contains_strictly(self, other: Cidr) -> bool {
        other.prefix > self.prefix && self.contains(other.network)
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(text: &str) -> Result<Cidr> {
        let bad = || Error::Cidr(text.to_owned());
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address = parse_ipv4(address)
            .map(IpAddr::V4)
            .or_else(|| address.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .ok_or_else(bad)?;
        let prefix = decimal(prefix, 128).ok_or_else(bad)?;
        Cidr::new(address, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0)
}

/// Four dot-separated decimal parts of at most 255, leading zeros allowed.
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut parts = text.split('.');
    let mut octets = [0u8; 4];
    for octet in &mut octets {
        *octet = decimal(parts.next()?, 255)?;
    }
    match parts.next() {
        None => Some(Ipv4Addr::from(octets)),
        Some(_) => None,
    }
}

/// ASCII digits only (no sign), at least one, with a value of at most `max`.
fn decimal(text: &str, max: u8) -> Option<u8> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = text
        .bytes()
        .try_fold(0u16, |n, b| Some(n * 10 + u16::from(b - b'0')).filter(|n| *n <= 255))?;
    u8::try_from(value).ok().filter(|v| *v <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_as_kube_apiserver_does() {
        for (text, canonical) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("010.001.0.0/016", "10.1.0.0/16"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("192.168.1.7/32", "192.168.1.7/32"),
            ("2001:db8::1/64", "2001:db8::/64"),
            ("::/0", "::/0"),
            ("::ffff:10.1.0.0/112", "10.1.0.0/16"),
        ] {
            assert_eq!(cidr(text).to_string(), canonical, "{text}");
        }
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0.0/8",
            "256.0.0.0/8",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "/8",
            "2001:db8::/129",
            "fe80::1%eth0/64",
            "10.0.0.0/8/8",
            "a.b.c.d/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        let ten = cidr("10.0.0.0/8");
        assert!(ten.contains(ip("10.255.0.1")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped is IPv4");
        assert!(!ten.contains(ip("2001:db8::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!cidr("::/0").contains(ip("10.0.0.1")));

        assert!(ten.contains_strictly(cidr("10.1.0.0/16")));
        assert!(!ten.contains_strictly(cidr("10.0.0.0/8")), "equal is not strict");
        assert!(!ten.contains_strictly(cidr("11.0.0.0/16")));
        assert!(!cidr("10.1.0.0/16").contains_strictly(ten));
        assert!(!cidr("::/0").contains_strictly(cidr("10.0.0.0/8")));
    }
}
