//! The LAN filter: which peer addresses may talk to the admin page, and which
//! host addresses it may listen on.
//!
//! Allowed: loopback, RFC 1918 (10/8, 172.16/12, 192.168/16), link-local
//! (169.254/16, fe80::/10) and IPv6 ULA (fc00::/7); CGNAT (100.64/10, the
//! range of Tailscale and carrier NAT) only with `[admin] allow_cgnat = true`.
//! IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged as the IPv4 address it carries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::AdminError;

/// Which addresses count as LAN: the fixed private ranges, plus CGNAT when
/// the owner opted in. Used both for the default listen set and for peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LanFilter {
    /// Admit and listen on CGNAT (100.64/10) addresses.
    pub allow_cgnat: bool,
}

impl LanFilter {
    /// Is `addr` a loopback, private, link-local or ULA address (or CGNAT,
    /// when allowed)?
    pub fn admits(self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => self.admits_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.admits_v4(v4),
                None => is_lan_v6(v6),
            },
        }
    }

    fn admits_v4(self, a: Ipv4Addr) -> bool {
        a.is_loopback() || a.is_private() || a.is_link_local() || (self.allow_cgnat && is_cgnat(a))
    }
}

/// CGNAT 100.64.0.0/10: 100.64.0.0 ..= 100.127.255.255.
fn is_cgnat(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 100 && (o[1] & 0b1100_0000) == 0b0100_0000
}

fn is_lan_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_loopback()
        // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfe80
        // unique local fc00::/7
        || (s[0] & 0xfe00) == 0xfc00
}

/// Parse and check explicitly configured listen addresses: each must be a
/// concrete address (never a wildcard such as `0.0.0.0` or `::`). A public
/// address is accepted only because the owner named it, with a warning; the
/// LAN filter still refuses every non-LAN peer on it.
pub fn parse_listen(addrs: &[String], filter: LanFilter) -> Result<Vec<IpAddr>, AdminError> {
    let mut out = Vec::new();
    for a in addrs {
        let trimmed = a.trim().trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = trimmed
            .parse()
            .map_err(|_| AdminError::ParseListenAddr { addr: a.clone() })?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(AdminError::WildcardListenAddr { addr: ip });
        }
        if !filter.admits(ip) {
            tracing::warn!(addr = %ip, "admin page configured to listen on a non-LAN address; non-LAN peers will still get 403");
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// The host's addresses `filter` admits (loopback, private, link-local, ULA,
/// CGNAT only when allowed): the default listen set. IPv6 link-local
/// addresses are skipped (they need a scope id to bind).
pub fn host_lan_addresses(filter: LanFilter) -> Result<Vec<IpAddr>, AdminError> {
    let mut all = interfaces::ipv4_addresses().map_err(AdminError::ListInterfaces)?;
    all.extend(interfaces::ipv6_addresses().map_err(AdminError::ListInterfaces)?);
    Ok(default_listen_set(all, filter))
}

/// Of the host's interface addresses, those to listen on by default.
fn default_listen_set(all: Vec<IpAddr>, filter: LanFilter) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for ip in all {
        if let IpAddr::V6(v6) = ip
            && (v6.segments()[0] & 0xffc0) == 0xfe80
        {
            continue;
        }
        if filter.admits(ip) && !ip.is_unspecified() && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Interface addresses without netlink: the appliance's units allow no
/// AF_NETLINK sockets (glibc's `getifaddrs` needs one), and the two classic
/// interfaces give all the admin page needs.
mod interfaces {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::os::fd::AsRawFd;

    /// `SIOCGIFCONF` from <linux/sockios.h> (the libc crate has it only for Android).
    const SIOCGIFCONF: libc::c_ulong = 0x8912;

    /// IPv4 addresses of the interfaces that are up, from `SIOCGIFCONF`.
    pub fn ipv4_addresses() -> std::io::Result<Vec<IpAddr>> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mut slots = 64usize;
        loop {
            let requests = ifconf(sock.as_raw_fd(), slots)?;
            // A full buffer may have cut the list short: ask again with more room.
            if requests.len() == slots && slots < 65536 {
                slots *= 4;
                continue;
            }
            return Ok(requests
                .iter()
                .filter_map(|r| {
                    let addr = sockaddr_in(r)?;
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        addr.sin_addr.s_addr,
                    ))))
                })
                .collect());
        }
    }

    #[allow(unsafe_code)]
    fn ifconf(fd: libc::c_int, slots: usize) -> std::io::Result<Vec<libc::ifreq>> {
        // SAFETY: ifreq is plain old data (arrays, integers and unions of them);
        // all-zero is a valid value.
        let mut requests: Vec<libc::ifreq> =
            (0..slots).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut conf = libc::ifconf {
            ifc_len: libc::c_int::try_from(slots * std::mem::size_of::<libc::ifreq>())
                .map_err(|_| std::io::Error::other("interface buffer too large"))?,
            ifc_ifcu: libc::__c_anonymous_ifc_ifcu {
                ifcu_req: requests.as_mut_ptr(),
            },
        };
        // SAFETY: the kernel writes at most ifc_len bytes of ifreq records into
        // `requests`, which is that long and outlives the call.
        let rc = unsafe { libc::ioctl(fd, SIOCGIFCONF as _, &mut conf) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let filled =
            usize::try_from(conf.ifc_len).unwrap_or(0) / std::mem::size_of::<libc::ifreq>();
        requests.truncate(filled.min(slots));
        Ok(requests)
    }

    #[allow(unsafe_code)]
    fn sockaddr_in(request: &libc::ifreq) -> Option<libc::sockaddr_in> {
        // SAFETY: SIOCGIFCONF fills the ifru_addr member of every record.
        let addr = unsafe { request.ifr_ifru.ifru_addr };
        if i32::from(addr.sa_family) != libc::AF_INET {
            return None;
        }
        // SAFETY: an AF_INET sockaddr is a sockaddr_in, which is no larger than
        // sockaddr; read_unaligned copes with the union's alignment.
        Some(unsafe { std::ptr::read_unaligned((&raw const addr).cast::<libc::sockaddr_in>()) })
    }

    /// IPv6 addresses from `/proc/self/net/if_inet6` (absent when IPv6 is off).
    pub fn ipv6_addresses() -> std::io::Result<Vec<IpAddr>> {
        match std::fs::read_to_string("/proc/self/net/if_inet6") {
            Ok(text) => Ok(parse_if_inet6(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Lines of "ADDRESS(32 hex) IFINDEX PREFIXLEN SCOPE FLAGS NAME"; lines that
    /// do not parse are skipped.
    pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
        text.lines()
            .filter_map(|line| {
                let hex = line.split_whitespace().next()?;
                if hex.len() != 32 {
                    return None;
                }
                u128::from_str_radix(hex, 16)
                    .ok()
                    .map(|v| IpAddr::V6(Ipv6Addr::from(v)))
            })
            .collect()
    }
}

/// The addresses to bind: the configured ones (checked), or every LAN
/// address of the host when none are configured.
pub fn listen_addresses(
    configured: &[String],
    filter: LanFilter,
) -> Result<Vec<IpAddr>, AdminError> {
    let addrs = if configured.is_empty() {
        host_lan_addresses(filter)?
    } else {
        parse_listen(configured, filter)?
    };
    if addrs.is_empty() {
        return Err(AdminError::NoListenAddr);
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_enumeration_without_netlink_finds_loopback() {
        let v4 = interfaces::ipv4_addresses().expect("SIOCGIFCONF");
        assert!(v4.contains(&ip("127.0.0.1")), "{v4:?}");
        assert!(
            host_lan_addresses(LanFilter::default())
                .expect("list")
                .contains(&ip("127.0.0.1"))
        );
    }

    #[test]
    fn if_inet6_lines_parse_and_junk_is_skipped() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\n\
                    fe800000000000000000000000000001 02 40 20 80     eth0\n\
                    fd00000000000000000000000000abcd 02 40 00 80     eth0\n\
                    zz000000000000000000000000000001 01 80 10 80       lo\n\
                    0001 01 80 10 80 short\n\
                    \n\
                    \u{0}\u{ff}garbage";
        let got = interfaces::parse_if_inet6(text);
        assert_eq!(got, vec![ip("::1"), ip("fe80::1"), ip("fd00::abcd")]);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The ranges with CGNAT opted in (the strict default: `cgnat_is_opt_in`).
    fn is_lan(a: IpAddr) -> bool {
        LanFilter { allow_cgnat: true }.admits(a)
    }

    /// Issue 16 item 7: CGNAT (e.g. Tailscale's 100.64/10) is neither admitted
    /// nor listened on by default; with `allow_cgnat` it is both.
    #[test]
    fn cgnat_is_opt_in() {
        let strict = LanFilter::default();
        let opt_in = LanFilter { allow_cgnat: true };
        let cgnat = [
            "100.64.0.0",
            "100.100.100.100",
            "100.127.255.255",
            "::ffff:100.64.0.1",
        ];
        for a in cgnat {
            assert!(!strict.admits(ip(a)), "{a} refused by default");
            assert!(opt_in.admits(ip(a)), "{a} admitted when allowed");
        }
        // The edges stay public either way; the private ranges stay LAN.
        for a in ["100.63.255.255", "100.128.0.0", "::ffff:100.128.0.1"] {
            assert!(!strict.admits(ip(a)) && !opt_in.admits(ip(a)), "{a}");
        }
        for a in ["127.0.0.1", "192.168.1.2", "fd00::1"] {
            assert!(strict.admits(ip(a)) && opt_in.admits(ip(a)), "{a}");
        }
        let host = vec![
            ip("127.0.0.1"),
            ip("100.101.102.103"),
            ip("192.168.1.2"),
            ip("8.8.8.8"),
            ip("fe80::1"),
            ip("0.0.0.0"),
            ip("127.0.0.1"),
        ];
        assert_eq!(
            default_listen_set(host.clone(), strict),
            vec![ip("127.0.0.1"), ip("192.168.1.2")]
        );
        assert_eq!(
            default_listen_set(host, opt_in),
            vec![ip("127.0.0.1"), ip("100.101.102.103"), ip("192.168.1.2")]
        );
    }

    #[test]
    fn lan_v4_ranges_and_edges() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.0",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "169.254.0.1",
            "169.254.255.255",
            "100.64.0.0",
            "100.127.255.255",
        ] {
            assert!(is_lan(ip(a)), "{a} should be LAN");
        }
        for a in [
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "11.0.0.1",
            "8.8.8.8",
            "198.51.100.2",
            "203.0.113.9",
            "1.1.1.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(!is_lan(ip(a)), "{a} should not be LAN");
        }
    }

    #[test]
    fn lan_v6_ranges_and_mapped() {
        for a in [
            "::1",
            "fe80::1",
            "febf:ffff::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:192.168.1.10",
            "::ffff:127.0.0.1",
            "::ffff:100.64.0.1",
        ] {
            assert!(is_lan(ip(a)), "{a} should be LAN");
        }
        for a in [
            "2001:db8::1",
            "2606:4700::1111",
            "fec0::1",
            "fe00::1",
            "::",
            "::ffff:8.8.8.8",
            "::ffff:100.128.0.1",
            "ff02::1",
        ] {
            assert!(!is_lan(ip(a)), "{a} should not be LAN");
        }
    }

    #[test]
    fn listen_refuses_wildcards() {
        assert!(matches!(
            parse_listen(&["0.0.0.0".into()], LanFilter::default()),
            Err(AdminError::WildcardListenAddr { .. })
        ));
        assert!(matches!(
            parse_listen(&["::".into()], LanFilter::default()),
            Err(AdminError::WildcardListenAddr { .. })
        ));
        assert!(matches!(
            parse_listen(&["[::]".into()], LanFilter::default()),
            Err(AdminError::WildcardListenAddr { .. })
        ));
        // Explicitly named public addresses are allowed (the peer filter still applies);
        // the default set never contains one (host_addresses_are_all_lan).
        assert_eq!(
            parse_listen(&["198.51.100.1".into()], LanFilter::default()).unwrap(),
            vec![ip("198.51.100.1")]
        );
        assert!(matches!(
            parse_listen(&["example.com".into()], LanFilter::default()),
            Err(AdminError::ParseListenAddr { .. })
        ));
        assert_eq!(
            parse_listen(&["127.0.0.1".into(), "[::1]".into()], LanFilter::default()).unwrap(),
            vec![ip("127.0.0.1"), ip("::1")]
        );
    }

    #[test]
    fn host_addresses_are_all_lan() {
        let addrs = host_lan_addresses(LanFilter::default()).unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| LanFilter::default().admits(*a) && !a.is_unspecified())
        );
        assert!(addrs.contains(&ip("127.0.0.1")));
    }
}
