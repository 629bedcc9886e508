//! Suspicion notices: a member that suspects another tells it so on every datagram it sends it
//! (Lifeguard's "buddy system", which memberlist implements by sending a `suspect` message with
//! every ping to a suspect member).
//!
//! SWIM clears a false suspicion only if the suspected member hears of it and refutes with a
//! higher incarnation. foca spreads a suspicion like any update: piggybacked on its next
//! `max_transmissions` datagrams, whoever they go to. Nothing steers a copy to the suspect, so with
//! three members and 5% loss every copy can miss it: in `gossip-lossy` seed 33, s1's one copy to s3
//! was lost and s2 spent all three of its copies on s1; s3 never refuted and was declared failed
//! while alive.
//!
//! So the driver prefixes each datagram foca sends to a member it sees as suspect with a
//! [`Notice`] naming that member's identity (name and generation) and suspected incarnation. The
//! receiver hands a notice about its own current identity to foca as an update about itself; foca
//! refutes when the incarnation is not older than its own. The notice rides in the same datagram,
//! so the number and timing of datagrams do not change. Only when the two together would exceed a
//! gossip packet does the notice go in a datagram of its own.
//!
//! Wire shape: [`MAGIC`], the notice's length (u16, big-endian), the notice (MessagePack, [`crate::codec`]), then foca's
//! datagram (possibly empty). No foca datagram starts with `0xC1` for the reason given in
//! [`super::coord_ping`]. A datagram that starts with the magic but does not decode is dropped
//! whole, foca's part included: never trusted.

use serde::{Deserialize, Serialize};

use super::identity::MAX_NAME_BYTES;

/// First bytes of every datagram that carries a notice.
pub const MAGIC: [u8; 4] = [0xC1, b's', b'u', b's'];

/// "You are suspected": the suspected identity and the incarnation it is suspected at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The suspected member's node name.
    pub name: String,
    /// The suspected identity's generation (see [`super::identity`]); a notice about an older
    /// generation of the receiver is stale and ignored.
    pub generation: u64,
    /// foca's incarnation of the suspicion.
    pub incarnation: foca::Incarnation,
}

/// Whether a datagram (after decryption) starts with a notice.
pub fn is_notice(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// `foca_data` prefixed with `notice`. Errors: the notice does not encode, or is longer than a u16
/// can say (never for a name within [`MAX_NAME_BYTES`]).
pub fn wrap(notice: &Notice, foca_data: &[u8]) -> Result<Vec<u8>, String> {
    let body = crate::codec::encode(notice).map_err(|e| e.to_string())?;
    let len = u16::try_from(body.len()).map_err(|_| format!("a {} byte suspicion notice", body.len()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + body.len() + foca_data.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(foca_data);
    Ok(out)
}

/// Splits a datagram that [`is_notice`] into the notice and foca's datagram (empty when the notice
/// came alone). Errors: no magic, a truncated or undecodable notice, a name longer than
/// [`MAX_NAME_BYTES`].
pub fn unwrap(data: &[u8]) -> Result<(Notice, &[u8]), String> {
    let rest = data.strip_prefix(&MAGIC).ok_or("not a suspicion notice")?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or("suspicion notice truncated")?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(format!("suspicion notice of {len} bytes in {} bytes", rest.len()));
    }
    let (body, foca_data) = rest.split_at(len);
    let notice: Notice = crate::codec::decode(body).map_err(|e| format!("suspicion notice: {e}"))?;
    if notice.name.len() > MAX_NAME_BYTES {
        return Err(format!("suspicion notice names a {} byte node", notice.name.len()));
    }
    Ok((notice, foca_data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice { name: "s3".into(), generation: 1_767_225_600_095, incarnation: 4 }
    }

    #[test]
    fn a_notice_and_focas_datagram_round_trip() {
        let framed = wrap(&notice(), b"foca bytes").unwrap();
        assert!(is_notice(&framed));
        assert_eq!(unwrap(&framed).unwrap(), (notice(), &b"foca bytes"[..]));
        let alone = wrap(&notice(), &[]).unwrap();
        assert_eq!(unwrap(&alone).unwrap(), (notice(), &[][..]));
    }

    #[test]
    fn focas_own_datagrams_are_never_taken_for_notices() {
        for (len, first) in super::super::identity::foca_first_bytes() {
            assert!(!is_notice(&[first, b's', b'u', b's']), "name length {len}");
        }
    }

    #[test]
    fn malformed_notices_are_refused() {
        let framed = wrap(&notice(), b"x").unwrap();
        assert!(unwrap(&framed[..5]).is_err(), "length cut");
        assert!(unwrap(&framed[..8]).is_err(), "body cut");
        assert!(unwrap(b"foca").is_err(), "no magic");
        let mut lying = framed.clone();
        lying[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(unwrap(&lying).is_err(), "length beyond the datagram");
        let long = Notice { name: "n".repeat(MAX_NAME_BYTES + 1), ..notice() };
        assert!(unwrap(&wrap(&long, &[]).unwrap()).is_err(), "name too long");
    }
}
