//! Which addresses an outbound call may reach (SECURITY.md #28). std's `is_global` and friends are
//! unstable, so the special-purpose ranges of the IANA registries are listed here: a URL a service
//! chose (a `notifyUrl`, a notification URL, a `jwks_uri`) must not make pforte call into the
//! authority's own network, the cloud metadata service or the machine itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// What outbound calls to service-chosen URLs may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Production: https to public addresses only.
    Public,
    /// With the development simulators on: also loopback, where the simulators and a service under
    /// development run (plain http there too).
    PublicAndLoopback,
}

impl Reach {
    /// `dev.simulators` on allows loopback; otherwise only public addresses.
    pub fn for_development(simulators: bool) -> Reach {
        if simulators {
            Reach::PublicAndLoopback
        } else {
            Reach::Public
        }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(self, ip: IpAddr) -> bool {
        is_public(ip) || (self == Reach::PublicAndLoopback && is_loopback(ip))
    }

    /// The rule for a URL before anything is sent: https to a public host (a name, or a public IP
    /// literal, which no resolver would be asked about); with loopback allowed, also http or https
    /// to `localhost` or a loopback IP. Names under `.localhost` never count: whether they stay on
    /// the machine is up to the resolver. The name's addresses are checked when connecting
    /// ([`super::GuardedClient`]).
    pub fn check_url(self, url: &Url) -> Result<(), &'static str> {
        let loopback_allowed = self == Reach::PublicAndLoopback;
        let loopback_host = match url.host() {
            None => return Err(self.rule()),
            Some(Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if domain.ends_with(".localhost") {
                    return Err(self.rule());
                }
                if domain == "localhost" {
                    true
                } else if domain.parse::<IpAddr>().is_ok() || domain.is_empty() {
                    return Err(self.rule());
                } else {
                    false
                }
            }
            Some(Host::Ipv4(ip)) => self.literal(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.literal(IpAddr::V6(ip))?,
        };
        match url.scheme() {
            "https" if !loopback_host || loopback_allowed => Ok(()),
            "http" if loopback_host && loopback_allowed => Ok(()),
            _ => Err(self.rule()),
        }
    }

    /// Whether the literal is allowed; `Ok(true)` for an allowed loopback address.
    fn literal(self, ip: IpAddr) -> Result<bool, &'static str> {
        if self.allows(ip) {
            Ok(is_loopback(ip))
        } else {
            Err(self.rule())
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Reach::Public => "must be https to a public host",
            Reach::PublicAndLoopback => {
                "must be https to a public host (or http to a loopback host while the development simulators run)"
            }
        }
    }
}

/// 127.0.0.0/8, ::1, and either as an IPv4-mapped IPv6 address.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// An address reachable on the public internet: none of the private, loopback, link-local,
/// unique-local, shared (CGNAT), multicast, documentation, benchmarking, reserved or unspecified
/// ranges, and no IPv6 form that embeds such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0 included
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF protocol assignments, TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Forms that carry an IPv4 address: judged by that address.
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7])); // NAT64 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2])); // 6to4
    }
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 local use 64:ff9b:1::/48
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo included
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00; // multicast
    !special
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().expect("an address"))
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "193.99.144.80",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2a00:1450:4001:80b::200e",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn special_ranges_are_not_public() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.5",
            "127.0.0.1",
            "127.8.9.10",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.10",
            "192.88.99.1",
            "192.168.1.20",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "2002:0a00:0001::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(ip), "{ip}");
        }
    }

    fn check(reach: Reach, url: &str) -> Result<(), &'static str> {
        reach.check_url(&Url::parse(url).expect("a URL"))
    }

    #[test]
    fn production_reaches_https_to_public_hosts_only() {
        for url in ["https://hooks.example.org/p", "https://1.1.1.1/p", "https://[2606:4700::1111]:8443/p"] {
            assert_eq!(check(Reach::Public, url), Ok(()), "{url}");
        }
        for url in [
            "http://hooks.example.org/p",
            "http://127.0.0.1:8081/admin/shutdown",
            "https://127.0.0.1/p",
            "https://localhost/p",
            "https://localhost./p",
            "http://localhost:8081/p",
            "https://a.localhost/p",
            "https://10.1.2.3/p",
            "https://[fd00::1]/p",
            "https://[::ffff:192.168.0.1]/p",
            "ftp://hooks.example.org/p",
        ] {
            assert_eq!(check(Reach::Public, url), Err("must be https to a public host"), "{url}");
        }
    }

    #[test]
    fn development_also_reaches_loopback_but_nothing_else_private() {
        let dev = Reach::PublicAndLoopback;
        for url in [
            "https://hooks.example.org/p",
            "http://127.0.0.1:8081/p",
            "http://localhost:9/p",
            "http://[::1]:9/p",
            "https://127.0.0.1/p",
        ] {
            assert_eq!(check(dev, url), Ok(()), "{url}");
        }
        for url in [
            "http://hooks.example.org/p",
            "http://a.localhost:8081/p",
            "https://10.0.0.1/p",
            "https://169.254.169.254/",
        ] {
            assert!(check(dev, url).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_in_development() {
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(!Reach::Public.allows(loopback));
        assert!(Reach::PublicAndLoopback.allows(loopback));
        assert!(!Reach::PublicAndLoopback.allows("10.0.0.1".parse().expect("ip")));
        assert_eq!(Reach::for_development(false), Reach::Public);
    }
}
