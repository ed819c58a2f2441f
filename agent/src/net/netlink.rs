//! rtnetlink access: link lookup, IPv6 address dump/add/delete, and the IPv6 address event stream.

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol, CacheInfo,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, MulticastGroup};
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

use crate::addr::{FloatingAddr, Mac};
use crate::error::AgentError;

/// The kernel's "forever" in IFA_CACHEINFO lifetimes.
pub const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// One interface, as far as the agent cares.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    /// IFF_UP: the administrative state.
    pub admin_up: bool,
    /// IFF_LOWER_UP: carrier. DAD only runs once both are up.
    pub carrier: bool,
}

/// Address flags as the kernel reports them: the header byte OR'ed with the
/// IFA_FLAGS attribute, since flags above bit 7 (and, on new kernels, all of
/// them) travel in the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrFlags(pub u32);

impl AddrFlags {
    pub fn tentative(self) -> bool {
        self.has(AddressFlags::Tentative)
    }
    pub fn dadfailed(self) -> bool {
        self.has(AddressFlags::Dadfailed)
    }
    pub fn optimistic(self) -> bool {
        self.has(AddressFlags::Optimistic)
    }
    pub fn nodad(self) -> bool {
        self.has(AddressFlags::Nodad)
    }
    pub fn deprecated(self) -> bool {
        self.has(AddressFlags::Deprecated)
    }
    fn has(self, f: AddressFlags) -> bool {
        self.0 & f.bits() != 0
    }

    /// The flags an operator reads, in `ip addr` wording.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            (self.tentative(), "tentative"),
            (self.dadfailed(), "dadfailed"),
            (self.optimistic(), "optimistic"),
            (self.nodad(), "nodad"),
            (self.deprecated(), "deprecated"),
            (self.has(AddressFlags::Permanent), "permanent"),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n)
            .collect()
    }
}

impl Serialize for AddrFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// One IPv6 address as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelAddr {
    pub index: u32,
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    pub flags: AddrFlags,
    /// IFA_PROTO; 0 (unspec) when absent. The agent's mark lives here.
    pub proto: u8,
    /// Remaining seconds; `None` means forever.
    pub valid_lft: Option<u32>,
    pub preferred_lft: Option<u32>,
}

impl KernelAddr {
    fn from_msg(msg: &AddressMessage) -> Option<Self> {
        if msg.header.family != AddressFamily::Inet6 {
            return None;
        }
        let mut addr = None;
        let mut flags = u32::from(msg.header.flags.bits());
        let mut proto = 0u8;
        let mut cache: Option<&CacheInfo> = None;
        for a in &msg.attributes {
            match a {
                // For IPv6 IFA_ADDRESS is the local address (IFA_LOCAL only
                // appears on point-to-point peers).
                AddressAttribute::Address(IpAddr::V6(v6)) => addr = Some(*v6),
                AddressAttribute::Flags(f) => flags |= f.bits(),
                AddressAttribute::Protocol(p) => proto = u8::from(*p),
                AddressAttribute::CacheInfo(c) => cache = Some(c),
                _ => {}
            }
        }
        let lft = |v: u32| (v != INFINITY_LIFE_TIME).then_some(v);
        Some(Self {
            index: msg.header.index,
            addr: addr?,
            prefix_len: msg.header.prefix_len,
            flags: AddrFlags(flags),
            proto,
            valid_lft: cache.and_then(|c| lft(c.ifa_valid)),
            preferred_lft: cache.and_then(|c| lft(c.ifa_preferred)),
        })
    }
}

/// A change to an IPv6 address, from RTNLGRP_IPV6_IFADDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrEvent {
    New(KernelAddr),
    Del(KernelAddr),
}

/// Turns a kernel errno into a message an operator can act on.
pub(crate) fn map_error(op: &'static str, dev: &str, e: rtnetlink::Error) -> AgentError {
    let errno = match &e {
        rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
        _ => 0,
    };
    let kernel = |errno_name: &'static str, hint: String| AgentError::Kernel {
        op,
        errno_name,
        hint,
    };
    match errno {
        libc::ENODEV => AgentError::NoSuchInterface(dev.to_owned()),
        libc::EPERM => AgentError::PermissionDenied { op },
        // addrconf_add_dev() answers EACCES when the interface has IPv6 off.
        libc::EACCES => AgentError::Ipv6Disabled {
            dev: dev.to_owned(),
        },
        libc::EADDRNOTAVAIL => kernel(
            "EADDRNOTAVAIL",
            format!("the address is not (or no longer) configured on {dev}"),
        ),
        libc::EEXIST => kernel("EEXIST", format!("the address already exists on {dev}")),
        libc::EINVAL => kernel(
            "EINVAL",
            "the request was malformed or the prefix length/lifetimes are invalid".into(),
        ),
        libc::ENOBUFS => kernel(
            "ENOBUFS",
            "the kernel ran out of buffer space; retry".into(),
        ),
        _ => AgentError::Netlink { op, source: e },
    }
}

/// A request handle on the rtnetlink socket of the current namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    /// When set, every address write (add, lifetime refresh) first asks
    /// the daemon's lease gate and holds its permit until the kernel
    /// answered (docs/agent-daemon.md).
    gate: Option<Arc<crate::daemon::lease::Gate>>,
    /// Requests outstanding on the socket. The kernel runs each request's
    /// handler inside the send, and the connection sends everything queued
    /// in one go: thousands of queued adds (each one walks the interface's
    /// multicast list) would hold this thread, and with it the lease
    /// renewal, inside the kernel for many seconds.
    outstanding: Arc<Semaphore>,
}

/// See `Netlink::outstanding`.
const MAX_OUTSTANDING: usize = 16;

impl Netlink {
    /// Opens the socket in the namespace the calling thread is in and drives
    /// it on the current tokio runtime.
    pub fn new() -> Result<Self, AgentError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| AgentError::io("open rtnetlink socket", e))?;
        tokio::spawn(conn);
        Ok(Self {
            handle,
            gate: None,
            outstanding: Arc::new(Semaphore::new(MAX_OUTSTANDING)),
        })
    }

    /// This socket, with every address write passing `gate` first.
    pub fn gated(mut self, gate: Arc<crate::daemon::lease::Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Returns once the kernel has handled every request queued on this
    /// socket before the call: the connection sends requests in order and
    /// the kernel handles each inside its send, so the answer to a later
    /// request proves the earlier ones are done (also those of futures
    /// that were dropped after queueing theirs).
    pub async fn barrier(&self) -> Result<(), AgentError> {
        let _turn = self.turn().await;
        self.handle
            .link()
            .get()
            .match_index(1)
            .execute()
            .try_next()
            .await
            .map_err(|e| map_error("read the loopback interface", "lo", e))?;
        Ok(())
    }

    /// A turn to talk to the kernel (see `Netlink::outstanding`).
    async fn turn(&self) -> Option<SemaphorePermit<'_>> {
        // Never closed, so never `None` in practice.
        self.outstanding.acquire().await.ok()
    }

    pub async fn link(&self, name: &str) -> Result<Link, AgentError> {
        let _turn = self.turn().await;
        let msg = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await
            .map_err(|e| map_error("look up the interface", name, e))?
            .ok_or_else(|| AgentError::NoSuchInterface(name.to_owned()))?;
        Ok(link_from_msg(&msg, name))
    }

    /// Index and name of every interface.
    pub async fn link_names(&self) -> Result<Vec<(u32, String)>, AgentError> {
        let _turn = self.turn().await;
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| map_error("list interfaces", "", e))?;
        Ok(msgs
            .iter()
            .map(|m| {
                let l = link_from_msg(m, "");
                (l.index, l.name)
            })
            .collect())
    }

    /// All IPv6 addresses, optionally of one interface.
    pub async fn addresses(&self, index: Option<u32>) -> Result<Vec<KernelAddr>, AgentError> {
        let _turn = self.turn().await;
        let mut req = self.handle.address().get();
        req.message_mut().header.family = AddressFamily::Inet6;
        if let Some(i) = index {
            req = req.set_link_index_filter(i);
        }
        let msgs: Vec<AddressMessage> = req
            .execute()
            .try_collect()
            .await
            .map_err(|e| map_error("list addresses", "", e))?;
        Ok(msgs
            .iter()
            .filter_map(KernelAddr::from_msg)
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// The kernel's copy of `addr` on interface `index`, if any.
    ///
    /// A point lookup (RTM_GETADDR without NLM_F_DUMP, answered from the
    /// kernel's address hash), so its cost does not grow with the number of
    /// addresses on the interface. The kernel matches a global address on
    /// any interface; when the answer names another one, the interface's
    /// dump decides.
    pub async fn find(&self, index: u32, addr: Ipv6Addr) -> Result<Option<KernelAddr>, AgentError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.index = index;
        msg.header.prefix_len = 128;
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetAddress(msg));
        req.header.flags = NLM_F_REQUEST;
        let turn = self.turn().await;
        let mut answers = self
            .handle
            .clone()
            .request(req)
            .map_err(|e| map_error("look up the address", "", e))?;
        let mut found = None;
        while let Some(m) = answers.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => {
                    found = KernelAddr::from_msg(&a);
                }
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    if -e.raw_code() == libc::EADDRNOTAVAIL {
                        return Ok(None);
                    }
                    return Err(map_error(
                        "look up the address",
                        "",
                        rtnetlink::Error::NetlinkError(e),
                    ));
                }
                _ => {}
            }
        }
        drop(turn);
        match found {
            Some(k) if k.index == index && k.addr == addr => Ok(Some(k)),
            Some(_) => Ok(self
                .addresses(Some(index))
                .await?
                .into_iter()
                .find(|a| a.addr == addr)),
            None => Ok(None),
        }
    }

    /// Adds (or, with `replace`, updates in place) an address carrying the
    /// agent's IFA_PROTO mark. `replace` never restarts DAD on this kernel,
    /// which is what makes lifetime refreshes safe.
    pub async fn add(
        &self,
        link: &Link,
        addr: FloatingAddr,
        flags: AddressFlags,
        lifetime_s: Option<u32>,
        proto: u8,
        replace: bool,
    ) -> Result<(), AgentError> {
        let mut req =
            self.handle
                .address()
                .add(link.index, IpAddr::V6(addr.addr()), addr.prefix_len());
        let msg = req.message_mut();
        msg.attributes.push(AddressAttribute::Flags(flags));
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(proto)));
        if let Some(l) = lifetime_s {
            let mut ci = CacheInfo::default();
            ci.ifa_valid = l;
            ci.ifa_preferred = l;
            msg.attributes.push(AddressAttribute::CacheInfo(ci));
        }
        let req = if replace { req.replace() } else { req };
        // The permit is held until the kernel answered, so a fence that
        // closes the gate never starts while this write is under way.
        let _permit = match &self.gate {
            Some(g) => Some(g.write_permit().await.ok_or(AgentError::LeaseExpired)?),
            None => None,
        };
        let _turn = self.turn().await;
        req.execute()
            .await
            .map_err(|e| map_error("add the address", &link.name, e))
    }

    pub async fn del(&self, link: &Link, addr: Ipv6Addr, prefix_len: u8) -> Result<(), AgentError> {
        let _turn = self.turn().await;
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.index = link.index;
        msg.header.prefix_len = prefix_len;
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr)));
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| map_error("delete the address", &link.name, e))
    }
}

fn link_from_msg(msg: &LinkMessage, fallback_name: &str) -> Link {
    let mut name = fallback_name.to_owned();
    let mut mac = None;
    let mut mtu = None;
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(b) => mac = Mac::from_slice(b),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            _ => {}
        }
    }
    Link {
        index: msg.header.index,
        name,
        mac,
        mtu,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
    }
}

/// A subscription to RTNLGRP_IPV6_IFADDR on its own socket.
///
/// Each waiter gets its own subscription so an idle daemon does not queue
/// every address event of the host; it must be created *before* the change
/// it waits for, or the verdict could be missed.
pub struct AddrEvents {
    rx: mpsc::UnboundedReceiver<AddrEvent>,
    tasks: [JoinHandle<()>; 2],
}

impl AddrEvents {
    pub fn subscribe() -> Result<Self, AgentError> {
        let (mut conn, _handle, mut raw) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Ifaddr])
                .map_err(|e| AgentError::io("subscribe to IPv6 address events", e))?;
        // Thousands of adds at once emit events faster than one wakeup reads
        // them; an overrun ends the subscription, so give the queue room.
        // SO_RCVBUFFORCE (root) passes net.core.rmem_max; SO_RCVBUF is the
        // fallback the kernel caps.
        let fd = conn.socket_mut().as_raw_fd();
        if set_rcvbuf(fd, libc::SO_RCVBUFFORCE, EVENT_RCVBUF).is_err() {
            let _ = set_rcvbuf(fd, libc::SO_RCVBUF, EVENT_RCVBUF);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let conn_task = tokio::spawn(conn);
        // Decode on a task of its own so the consumer sees typed events only.
        let decode_task = tokio::spawn(async move {
            while let Some((msg, _)) = raw.next().await {
                if let Some(ev) = decode_event(msg) {
                    if tx.send(ev).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self {
            rx,
            tasks: [conn_task, decode_task],
        })
    }

    /// The next event; `None` if the socket closed. Cancel-safe (an mpsc receive).
    pub async fn next(&mut self) -> Option<AddrEvent> {
        self.rx.recv().await
    }
}

impl Drop for AddrEvents {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Receive buffer of an address-event subscription (the kernel doubles it).
const EVENT_RCVBUF: libc::c_int = 8 << 20;

fn set_rcvbuf(fd: RawFd, opt: libc::c_int, bytes: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `fd` is a live socket and `bytes` an int of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn decode_event(msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<AddrEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
            KernelAddr::from_msg(&m).map(AddrEvent::New)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
            KernelAddr::from_msg(&m).map(AddrEvent::Del)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::ErrorMessage;
    use rtnetlink::packet_route::address::AddressHeaderFlags;

    fn nl_err(errno: i32) -> rtnetlink::Error {
        let mut m = ErrorMessage::default();
        m.code = std::num::NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(m)
    }

    fn msg(header: AddressHeaderFlags, attrs: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = 128;
        m.header.index = 7;
        m.header.flags = header;
        m.attributes = attrs;
        m
    }

    fn x() -> IpAddr {
        "2001:db8::1".parse().unwrap()
    }

    #[test]
    fn flags_from_the_ifa_flags_attribute_are_merged_with_the_header_byte() {
        // Optimistic travels in IFA_FLAGS on this kernel, tentative in both.
        let m = msg(
            AddressHeaderFlags::Tentative,
            vec![
                AddressAttribute::Address(x()),
                AddressAttribute::Flags(AddressFlags::Optimistic | AddressFlags::Tentative),
            ],
        );
        let k = KernelAddr::from_msg(&m).unwrap();
        assert!(k.flags.tentative() && k.flags.optimistic());
        assert_eq!(k.flags.names(), vec!["tentative", "optimistic"]);
    }

    #[test]
    fn proto_and_finite_lifetimes_are_read_and_forever_is_none() {
        let mut ci = CacheInfo::default();
        ci.ifa_valid = 30;
        ci.ifa_preferred = INFINITY_LIFE_TIME;
        let m = msg(
            AddressHeaderFlags::empty(),
            vec![
                AddressAttribute::Address(x()),
                AddressAttribute::Protocol(AddressProtocol::from(0xf1)),
                AddressAttribute::CacheInfo(ci),
            ],
        );
        let k = KernelAddr::from_msg(&m).unwrap();
        assert_eq!(k.proto, 0xf1);
        assert_eq!(k.valid_lft, Some(30));
        assert_eq!(k.preferred_lft, None);
        assert_eq!((k.index, k.prefix_len), (7, 128));
    }

    #[test]
    fn ipv4_messages_are_not_addresses_of_ours() {
        let mut m = msg(
            AddressHeaderFlags::empty(),
            vec![AddressAttribute::Address(x())],
        );
        m.header.family = AddressFamily::Inet;
        assert!(KernelAddr::from_msg(&m).is_none());
    }

    #[test]
    fn enodev_means_no_such_interface() {
        assert!(matches!(
            map_error("add the address", "eth9", nl_err(libc::ENODEV)),
            AgentError::NoSuchInterface(d) if d == "eth9"
        ));
    }

    #[test]
    fn eperm_asks_for_cap_net_admin() {
        let e = map_error("add the address", "eth0", nl_err(libc::EPERM));
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
    }

    #[test]
    fn eacces_asks_whether_ipv6_is_enabled() {
        let e = map_error("add the address", "eth0", nl_err(libc::EACCES));
        assert!(matches!(e, AgentError::Ipv6Disabled { .. }));
        assert!(e.is_bad_input());
    }

    #[test]
    fn eaddrnotavail_says_the_address_is_not_there() {
        let e = map_error("delete the address", "eth0", nl_err(libc::EADDRNOTAVAIL));
        assert!(
            e.to_string()
                .contains("not (or no longer) configured on eth0"),
            "{e}"
        );
    }

    #[test]
    fn unknown_errnos_keep_the_netlink_error_as_source() {
        let e = map_error("add the address", "eth0", nl_err(libc::EIO));
        assert!(std::error::Error::source(&e).is_some());
    }
}
