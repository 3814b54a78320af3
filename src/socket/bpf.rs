//! Classic BPF, as Linux runs it for socket filters (SO_ATTACH_FILTER):
//! the check a program passes before it is attached (the kernel's
//! `bpf_check_classic` and `check_load_and_stores`, plus the size its eBPF
//! translation is charged against `optmem_max`), and an interpreter with
//! the translation's run-time rules: registers start at 0, a load outside
//! the packet or a division by a zero X ends the program with 0 (drop),
//! shifts by X use its low 5 bits, comparisons are unsigned 32-bit.
//!
//! The packet is given in pieces ([`Packet`]): the bytes before the
//! filter's offset 0 (link-layer and network headers, reached through
//! SKF_LL_OFF and SKF_NET_OFF), the transport header where offset 0 is, and
//! the payload, so a datagram's bytes are never copied to be filtered.

use alloc::vec::Vec;

use crate::backend::contract::Errno;
use crate::consts::*;

/// Most instructions in a program (BPF_MAXINSNS).
pub(crate) const MAXINSNS: usize = 4096;
/// Scratch memory words (BPF_MEMWORDS).
const MEMWORDS: u32 = 16;
/// Size of one `struct sock_filter`.
pub(crate) const INSN_SIZE: usize = 8;

// Instruction fields (linux/bpf_common.h, linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const K: u16 = 0x00;
const X: u16 = 0x08;
const RET_A: u16 = 0x10;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// SKF_AD_OFF: ancillary loads (`LD ABS` at SKF_AD_OFF + n).
const AD_OFF: i32 = -0x1000;
/// SKF_NET_OFF: loads relative to the network header.
const NET_OFF: i32 = -0x10_0000;
/// SKF_LL_OFF: loads relative to the link-layer header.
const LL_OFF: i32 = -0x20_0000;
const AD_PROTOCOL: i32 = 0;
const AD_PKTTYPE: i32 = 4;
const AD_IFINDEX: i32 = 8;
const AD_NLATTR: i32 = 12;
const AD_NLATTR_NEST: i32 = 16;
const AD_MARK: i32 = 20;
const AD_QUEUE: i32 = 24;
const AD_HATYPE: i32 = 28;
const AD_RXHASH: i32 = 32;
const AD_CPU: i32 = 36;
const AD_ALU_XOR_X: i32 = 40;
const AD_VLAN_TAG: i32 = 44;
const AD_VLAN_TAG_PRESENT: i32 = 48;
const AD_PAY_OFFSET: i32 = 52;
const AD_RANDOM: i32 = 56;
const AD_VLAN_TPID: i32 = 60;

/// One `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump-if-true distance.
    pub jt: u8,
    /// Jump-if-false distance.
    pub jf: u8,
    /// The constant.
    pub k: u32,
}

impl Insn {
    /// From the C layout (native byte order).
    fn from_bytes(b: &[u8]) -> Insn {
        let mut k = [0u8; 4];
        k.copy_from_slice(&b[4..8]);
        Insn {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes(k),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.code.to_ne_bytes());
        out[2] = self.jt;
        out[3] = self.jf;
        out[4..8].copy_from_slice(&self.k.to_ne_bytes());
    }

    /// The ancillary field an `LD ABS` names, if it names one.
    fn ancillary(&self) -> Option<i32> {
        let k = self.k as i32;
        let ld_abs = self.code & 0xe7 == LD | ABS && self.code & 0x18 != 0x18;
        (ld_abs && (AD_OFF..0).contains(&k)).then_some(k - AD_OFF)
    }
}

/// Whether Linux's `chk_code_allowed` knows `code`.
fn known(code: u16) -> bool {
    const ALU_OPS: [u16; 10] = [ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH];
    match code & 0x07 {
        ALU => {
            code == ALU | NEG
                || ALU_OPS
                    .iter()
                    .any(|&op| code == ALU | op | K || code == ALU | op | X)
        }
        LD => [
            W | ABS,
            H | ABS,
            B | ABS,
            W | LEN,
            W | IND,
            H | IND,
            B | IND,
            IMM,
            MEM,
        ]
        .iter()
        .any(|&m| code == LD | m),
        LDX => [W | LEN, B | MSH, IMM, MEM]
            .iter()
            .any(|&m| code == LDX | m),
        ST | STX => code < 0x08,
        MISC => code == MISC | TAX || code == MISC | TXA,
        RET => code == RET | K || code == RET | RET_A,
        _ => {
            code == JMP | JA
                || [JEQ, JGE, JGT, JSET]
                    .iter()
                    .any(|&op| code == JMP | op | K || code == JMP | op | X)
        }
    }
}

/// Whether `n` (SKF_AD_*) is an ancillary field the kernel knows.
fn known_ancillary(n: i32) -> bool {
    (0..=AD_VLAN_TPID).contains(&n) && n % 4 == 0
}

/// Whether `code` is a conditional jump.
fn is_cond_jump(code: u16) -> bool {
    code & 0x07 == JMP && code & 0xf0 != JA
}

/// A checked program.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    insns: Vec<Insn>,
    /// Bytes the kernel charges the socket for it (`bpf_prog_size` of its
    /// eBPF translation).
    charge: usize,
}

impl Program {
    /// A program from `struct sock_filter`s in C layout, checked as Linux
    /// checks one: EINVAL for an empty, oversized or malformed program (an
    /// unknown opcode, a jump out of it, a scratch cell out of range or
    /// read before written, a division or modulo by a constant 0, a shift
    /// by 32 or more, an unknown ancillary load, a last instruction that is
    /// not a RET) or one whose translation needs a jump the kernel cannot
    /// encode.
    pub(crate) fn from_bytes(raw: &[u8]) -> Result<Program, Errno> {
        let n = raw.len() / INSN_SIZE;
        if raw.len() % INSN_SIZE != 0 || n == 0 || n > MAXINSNS {
            return Err(EINVAL);
        }
        let mut insns = Vec::new();
        insns.try_reserve_exact(n).map_err(|_| ENOMEM)?;
        insns.extend(raw.chunks_exact(INSN_SIZE).map(Insn::from_bytes));
        check(&insns)?;
        let charge = translated_size(&insns)?;
        Ok(Program { insns, charge })
    }

    /// Number of instructions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.insns.len()
    }

    /// What the kernel charges against `optmem_max` for it.
    pub(crate) fn charge(&self) -> usize {
        self.charge
    }

    /// The program in C layout, as it was attached.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = alloc::vec![0u8; self.insns.len() * INSN_SIZE];
        for (i, c) in self.insns.iter().zip(out.chunks_exact_mut(INSN_SIZE)) {
            i.write(c);
        }
        out
    }

    /// Runs the program over `p`: the number of bytes to keep (0: drop).
    pub(crate) fn run(&self, p: &Packet<'_>) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEMWORDS as usize];
        let mut pc = 0usize;
        // The check made every jump forward and in range, and the last
        // instruction a RET: the loop ends.
        while let Some(&i) = self.insns.get(pc) {
            pc += 1;
            let k = i.k;
            let src = if i.code & X != 0 { x } else { k };
            match i.code & 0x07 {
                RET => return if i.code == RET | RET_A { a } else { k },
                ALU => {
                    a = match i.code & 0xf0 {
                        ADD => a.wrapping_add(src),
                        SUB => a.wrapping_sub(src),
                        MUL => a.wrapping_mul(src),
                        DIV | MOD if src == 0 => return 0,
                        DIV => a / src,
                        MOD => a % src,
                        OR => a | src,
                        AND => a & src,
                        XOR => a ^ src,
                        LSH => a.wrapping_shl(src),
                        RSH => a.wrapping_shr(src),
                        _ => a.wrapping_neg(),
                    }
                }
                JMP => {
                    let skip = match i.code & 0xf0 {
                        JA => k as usize,
                        op => {
                            let hit = match op {
                                JEQ => a == src,
                                JGT => a > src,
                                JGE => a >= src,
                                _ => a & src != 0,
                            };
                            usize::from(if hit { i.jt } else { i.jf })
                        }
                    };
                    pc += skip;
                }
                ST => mem[(k % MEMWORDS) as usize] = a,
                STX => mem[(k % MEMWORDS) as usize] = x,
                MISC => {
                    if i.code == MISC | TAX {
                        x = a;
                    } else {
                        a = x;
                    }
                }
                LDX => {
                    x = match i.code & 0xe0 {
                        IMM => k,
                        MEM => mem[(k % MEMWORDS) as usize],
                        LEN => p.len(),
                        _ => match p.load(k as i32, 1) {
                            Some(v) => (v & 0xf) << 2,
                            None => return 0,
                        },
                    }
                }
                _ => {
                    a = match i.code & 0xe0 {
                        IMM => k,
                        MEM => mem[(k % MEMWORDS) as usize],
                        LEN => p.len(),
                        mode => {
                            if let Some(n) = i.ancillary() {
                                ancillary(n, p, a, x)
                            } else {
                                let at = if mode == IND {
                                    x.wrapping_add(k) as i32
                                } else {
                                    k as i32
                                };
                                let size = match i.code & 0x18 {
                                    W => 4,
                                    H => 2,
                                    _ => 1,
                                };
                                match p.load(at, size) {
                                    Some(v) => v,
                                    None => return 0,
                                }
                            }
                        }
                    }
                }
            }
        }
        0
    }
}

#[cfg(feature = "std")]
impl Program {
    /// Runs the program as a seccomp filter over `data`, the bytes of a
    /// `struct seccomp_data` (native-endian words): the filter's verdict.
    /// A seccomp filter loads whole native words where a socket filter
    /// loads big-endian bytes, so each word is handed over byte-swapped to
    /// big-endian, and its length (BPF_LEN) is the struct's.
    pub(crate) fn run_seccomp(&self, data: &[u8; 64]) -> u32 {
        let mut words = [0u8; 64];
        for (to, from) in words.chunks_exact_mut(4).zip(data.chunks_exact(4)) {
            let w = u32::from_ne_bytes([from[0], from[1], from[2], from[3]]);
            to.copy_from_slice(&w.to_be_bytes());
        }
        self.run(&Packet {
            before: &[],
            ll_at: None,
            net_at: 0,
            header: &words,
            payload: &[],
            meta: Meta::default(),
        })
    }
}

/// `bpf_check_classic` and `check_load_and_stores`.
fn check(insns: &[Insn]) -> Result<(), Errno> {
    let n = insns.len();
    for (pc, i) in insns.iter().enumerate() {
        if !known(i.code) {
            return Err(EINVAL);
        }
        let k = i.k;
        let bad = match i.code {
            c if c == ALU | DIV | K || c == ALU | MOD | K => k == 0,
            c if c == ALU | LSH | K || c == ALU | RSH | K => k >= 32,
            c if c == LD | MEM || c == LDX | MEM || c == ST || c == STX => k >= MEMWORDS,
            c if c == JMP | JA => k as u64 >= (n - pc - 1) as u64,
            c if is_cond_jump(c) => {
                pc + usize::from(i.jt) + 1 >= n || pc + usize::from(i.jf) + 1 >= n
            }
            c if c & 0xe7 == LD | ABS => {
                (AD_OFF..0).contains(&(k as i32)) && !known_ancillary(k as i32 - AD_OFF)
            }
            _ => false,
        };
        if bad {
            return Err(EINVAL);
        }
    }
    let last = insns[n - 1].code;
    if last != RET | K && last != RET | RET_A {
        return Err(EINVAL);
    }
    // Scratch cells are read only after a write on every path to the read.
    let mut masks = Vec::new();
    masks.try_reserve_exact(n).map_err(|_| ENOMEM)?;
    masks.resize(n, u16::MAX);
    let mut valid: u16 = 0;
    for (pc, i) in insns.iter().enumerate() {
        valid &= masks[pc];
        match i.code {
            c if c == ST || c == STX => valid |= 1 << i.k,
            c if (c == LD | MEM || c == LDX | MEM) && valid & (1 << i.k) == 0 => {
                return Err(EINVAL);
            }
            c if c == JMP | JA => {
                masks[pc + 1 + i.k as usize] &= valid;
                valid = u16::MAX;
            }
            c if is_cond_jump(c) => {
                masks[pc + 1 + usize::from(i.jt)] &= valid;
                masks[pc + 1 + usize::from(i.jf)] &= valid;
                valid = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

/// eBPF instructions Linux's `convert_bpf_ld_abs` emits for a packet load
/// of `size` bytes at `k` (x86-64 and AArch64: unaligned loads allowed).
fn ld_abs_len(k: u32, size: u32, indirect: bool) -> usize {
    let slow = 8 + usize::from(indirect && k != 0);
    if indirect || (k as i32) < 0 {
        return slow;
    }
    let fast = 1
        + usize::from(k != 0)
        + 1
        + if k <= i16::MAX as u32 { 1 } else { 3 }
        + usize::from(size > 1)
        + 1;
    fast + slow
}

/// The eBPF instructions one classic instruction becomes, and where in
/// them its (first) jump is.
fn translated_len(i: &Insn) -> (usize, usize) {
    let size = match i.code & 0x18 {
        W => 4,
        H => 2,
        _ => 1,
    };
    match i.code & 0x07 {
        ALU if i.code == ALU | DIV | X || i.code == ALU | MOD | X => (5, 0),
        LD if i.code & 0xe0 == ABS || i.code & 0xe0 == IND => match i.ancillary() {
            Some(AD_PROTOCOL | AD_PKTTYPE | AD_VLAN_TPID) => (2, 0),
            Some(AD_VLAN_TAG_PRESENT) => (3, 0),
            Some(AD_IFINDEX | AD_HATYPE) => (4, 0),
            Some(AD_PAY_OFFSET | AD_NLATTR | AD_NLATTR_NEST | AD_CPU | AD_RANDOM) => (4, 0),
            Some(_) => (1, 0),
            None => (ld_abs_len(i.k, size, i.code & 0xe0 == IND), 0),
        },
        LDX if i.code == LDX | B | MSH => (1 + ld_abs_len(i.k, 1, false) + 5, 0),
        JMP if i.code == JMP | JA => (1, 0),
        JMP => {
            let tmp = usize::from(i.code & X == 0 && (i.k as i32) < 0);
            let pair = i.jf != 0 && !(i.jt == 0 && i.code & 0xf0 != JSET);
            (tmp + 1 + usize::from(pair), tmp)
        }
        RET if i.code == RET | K => (2, 0),
        _ => (1, 0),
    }
}

/// Whether an instruction reads the packet (the translation then caches
/// the packet's pointers in a longer prologue).
fn reads_packet(i: &Insn) -> bool {
    (i.code & 0x07 == LD
        && (i.code & 0xe0 == ABS || i.code & 0xe0 == IND)
        && i.ancillary().is_none())
        || i.code == LDX | B | MSH
}

/// `bpf_prog_size` of the program's eBPF translation (what
/// `__sk_filter_charge` charges), or EINVAL where a translated jump does
/// not fit eBPF's 16-bit offset.
fn translated_size(insns: &[Insn]) -> Result<usize, Errno> {
    let mut at = Vec::new();
    at.try_reserve_exact(insns.len() + 1).map_err(|_| ENOMEM)?;
    let mut total = 3 + if insns.iter().any(reads_packet) { 4 } else { 0 };
    for i in insns {
        at.push(total);
        total += translated_len(i).0;
    }
    at.push(total);
    for (pc, i) in insns.iter().enumerate() {
        if i.code & 0x07 != JMP {
            continue;
        }
        let (len, first) = translated_len(i);
        let targets: [(usize, usize); 2] = if i.code == JMP | JA {
            [
                (pc + 1 + i.k as usize, first),
                (pc + 1 + i.k as usize, first),
            ]
        } else if len - first == 1 {
            let t = if i.jf == 0 { i.jt } else { i.jf };
            [(pc + 1 + usize::from(t), first); 2]
        } else {
            [
                (pc + 1 + usize::from(i.jt), first),
                (pc + 1 + usize::from(i.jf), first + 1),
            ]
        };
        for (t, within) in targets {
            let off = at[t] as i64 - at[pc] as i64 - 1 - within as i64;
            if off > i64::from(i16::MAX) {
                return Err(EINVAL);
            }
        }
    }
    // struct bpf_prog's header (64-bit) before its instructions, and never
    // less than the struct itself.
    const PROG_HEADER: usize = 72;
    Ok((PROG_HEADER + total * 8).max(PROG_HEADER + 8))
}

/// The values of the ancillary loads (SKF_AD_*) for one packet.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Meta {
    /// `skb->protocol` (ETH_P_IP, ETH_P_IPV6), host order.
    pub protocol: u16,
    /// PACKET_HOST, PACKET_BROADCAST, ...
    pub pkttype: u32,
    /// The receiving interface.
    pub ifindex: u32,
    /// Its ARPHRD_* type.
    pub hatype: u16,
    /// `skb->mark`.
    pub mark: u32,
    /// The CPU the filter runs on.
    pub cpu: u32,
    /// A random number for SKF_AD_RANDOM.
    pub random: u32,
}

/// A packet as a filter sees it, in pieces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packet<'a> {
    /// The bytes before offset 0: the link-layer header, then the network
    /// header.
    pub before: &'a [u8],
    /// Where in `before` the link-layer header starts (None: unset).
    pub ll_at: Option<usize>,
    /// Where in `before` the network header starts.
    pub net_at: usize,
    /// From offset 0: the transport header.
    pub header: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
    /// What the ancillary loads read.
    pub meta: Meta,
}

impl Packet<'_> {
    /// `skb->len`: from offset 0 to the end.
    fn len(&self) -> u32 {
        (self.header.len() + self.payload.len()) as u32
    }

    /// The byte at `i` counted from the start of `before`.
    fn byte(&self, i: usize) -> Option<u8> {
        let (b, h) = (self.before.len(), self.header.len());
        if i < b {
            self.before.get(i).copied()
        } else if i < b + h {
            self.header.get(i - b).copied()
        } else {
            self.payload.get(i - b - h).copied()
        }
    }

    /// A big-endian load of `size` bytes at `k` as `LD ABS` means it:
    /// from offset 0, or from the network or link-layer header for the
    /// SKF_NET_OFF and SKF_LL_OFF ranges. None outside the packet.
    fn load(&self, k: i32, size: usize) -> Option<u32> {
        let start = if k >= 0 {
            self.before.len() + k as usize
        } else if k >= NET_OFF {
            self.net_at + (k - NET_OFF) as usize
        } else if k >= LL_OFF {
            self.ll_at? + (k - LL_OFF) as usize
        } else {
            return None;
        };
        let end = self.before.len() + self.header.len() + self.payload.len();
        if start.checked_add(size)? > end {
            return None;
        }
        (start..start + size).try_fold(0u32, |v, i| Some(v << 8 | u32::from(self.byte(i)?)))
    }

    /// The bytes from offset 0 on, as a netlink attribute search reads
    /// them (`nla_find`): the offset of the first attribute of `kind` at
    /// or after `from`, or 0.
    fn nla_find(&self, from: u32, kind: u32, nested: bool) -> u32 {
        let len = self.len();
        if len < 4 || from > len - 4 {
            return 0;
        }
        let u16_at = |o: u32| {
            self.load(o as i32, 2)
                .map(|v| u16::from_ne_bytes((v as u16).to_be_bytes()))
        };
        let (mut at, end) = if nested {
            let Some(nl) = u16_at(from) else { return 0 };
            if u32::from(nl) > len - from || nl < 4 {
                return 0;
            }
            (from + 4, from + u32::from(nl))
        } else {
            (from, len)
        };
        // Attributes are in host order (little-endian here), 4-aligned.
        while at + 4 <= end {
            let (Some(nl), Some(ty)) = (u16_at(at), u16_at(at + 2)) else {
                return 0;
            };
            let nl = u32::from(nl);
            if nl < 4 || nl > end - at {
                return 0;
            }
            if u32::from(ty) & 0x3fff == kind {
                return at;
            }
            at += (nl + 3) & !3;
        }
        0
    }
}

/// The value an ancillary load of SKF_AD_OFF + `n` puts in A.
fn ancillary(n: i32, p: &Packet<'_>, a: u32, x: u32) -> u32 {
    let m = &p.meta;
    match n {
        AD_PROTOCOL => u32::from(m.protocol),
        AD_PKTTYPE => m.pkttype,
        AD_IFINDEX => m.ifindex,
        AD_HATYPE => u32::from(m.hatype),
        AD_MARK => m.mark,
        AD_CPU => m.cpu,
        AD_RANDOM => m.random,
        AD_ALU_XOR_X => a ^ x,
        AD_NLATTR => p.nla_find(a, x, false),
        AD_NLATTR_NEST => p.nla_find(a, x, true),
        AD_PAY_OFFSET => p.header.len() as u32,
        // No VLAN, one queue, no receive hash.
        AD_QUEUE | AD_RXHASH | AD_VLAN_TAG | AD_VLAN_TAG_PRESENT | AD_VLAN_TPID => 0,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    fn bytes(p: &[Insn]) -> Vec<u8> {
        let mut v = alloc::vec![0u8; p.len() * INSN_SIZE];
        for (i, c) in p.iter().zip(v.chunks_exact_mut(INSN_SIZE)) {
            i.write(c);
        }
        v
    }

    fn prog(p: &[Insn]) -> Result<Program, Errno> {
        Program::from_bytes(&bytes(p))
    }

    fn udp<'a>(hdr: &'a [u8], payload: &'a [u8]) -> Packet<'a> {
        Packet {
            before: &[0x45, 0, 0, 30],
            ll_at: None,
            net_at: 0,
            header: hdr,
            payload,
            meta: Meta {
                protocol: 0x0800,
                ifindex: 1,
                hatype: 772,
                ..Meta::default()
            },
        }
    }

    fn run(p: &[Insn], payload: &[u8]) -> u32 {
        let hdr = [0x12, 0x34, 0x56, 0x78, 0, 10, 0, 0];
        prog(p).unwrap().run(&udp(&hdr, payload))
    }

    const RETA: Insn = Insn {
        code: RET | RET_A,
        jt: 0,
        jf: 0,
        k: 0,
    };

    #[test]
    fn refuses_malformed_programs_with_einval() {
        let ret = ins(RET | K, 0, 0, 1);
        assert_eq!(Program::from_bytes(&[]).unwrap_err(), EINVAL);
        assert_eq!(Program::from_bytes(&[0; 7]).unwrap_err(), EINVAL);
        let long = alloc::vec![ret; MAXINSNS + 1];
        assert_eq!(prog(&long).unwrap_err(), EINVAL);
        assert!(prog(&long[..MAXINSNS]).is_ok());
        let bad: &[&[Insn]] = &[
            &[ins(JMP | JA, 0, 0, 5), ret],
            &[ins(JMP | JA, 0, 0, 1), ret],
            &[ins(JMP | JEQ | K, 1, 0, 0), ret],
            &[ins(JMP | JEQ | K, 0, 1, 0), ret],
            &[ins(LD | W | LEN, 0, 0, 0)],
            &[ins(ALU | DIV | K, 0, 0, 0), ret],
            &[ins(ALU | MOD | K, 0, 0, 0), ret],
            &[ins(ALU | LSH | K, 0, 0, 32), ret],
            &[ins(ST, 0, 0, 16), ret],
            &[ins(LD | MEM, 0, 0, 0), ret],
            &[ins(0xffff, 0, 0, 0), ret],
            &[ins(LD | B | ABS, 0, 0, AD_OFF as u32 + 64), ret],
            &[ins(LDX | W | ABS, 0, 0, 0), ret],
            // Written on one path only.
            &[
                ins(JMP | JEQ | K, 0, 1, 0),
                ins(ST, 0, 0, 3),
                ins(LDX | MEM, 0, 0, 3),
                ret,
            ],
        ];
        for p in bad {
            assert_eq!(prog(p).unwrap_err(), EINVAL, "{p:?}");
        }
        // Written on both paths.
        assert!(prog(&[
            ins(ST, 0, 0, 3),
            ins(JMP | JEQ | K, 0, 1, 0),
            ins(ST, 0, 0, 3),
            ins(LDX | MEM, 0, 0, 3),
            ret,
        ])
        .is_ok());
    }

    #[test]
    fn round_trips_and_charges() {
        let p = [
            ins(LD | B | ABS, 0, 0, 8),
            ins(JMP | JEQ | K, 0, 1, 65),
            ins(RET | K, 0, 0, 0xffff),
            ins(RET | K, 0, 0, 0),
        ];
        let q = prog(&p).unwrap();
        assert_eq!(q.len(), 4);
        assert_eq!(q.to_bytes(), bytes(&p));
        let all_ret = prog(&alloc::vec![ins(RET | K, 0, 0, 1); MAXINSNS]).unwrap();
        assert_eq!(all_ret.charge(), 72 + (3 + 2 * MAXINSNS) * 8);
    }

    #[test]
    fn loads_from_the_transport_header() {
        assert_eq!(run(&[ins(LD | B | ABS, 0, 0, 8), RETA], b"A"), 65);
        assert_eq!(run(&[ins(LD | H | ABS, 0, 0, 0), RETA], b""), 0x1234);
        assert_eq!(run(&[ins(LD | W | ABS, 0, 0, 0), RETA], b""), 0x1234_5678);
        assert_eq!(run(&[ins(LD | W | ABS, 0, 0, 6), RETA], b"xy"), 0x0000_7879);
        // Past the end: the program ends with 0.
        assert_eq!(
            run(&[ins(LD | W | ABS, 0, 0, 7), ins(RET | K, 0, 0, 9)], b"xy"),
            0
        );
        assert_eq!(run(&[ins(LD | W | LEN, 0, 0, 0), RETA], b"xyz"), 11);
        assert_eq!(
            run(
                &[ins(LDX | W | LEN, 0, 0, 0), ins(MISC | TXA, 0, 0, 0), RETA],
                b"x"
            ),
            9
        );
        assert_eq!(
            run(
                &[ins(LDX | IMM, 0, 0, 7), ins(LD | B | IND, 0, 0, 2), RETA],
                b"abc"
            ),
            u32::from(b'b')
        );
        // 4 * (byte 0 & 0xf).
        assert_eq!(
            run(
                &[ins(LDX | B | MSH, 0, 0, 0), ins(MISC | TXA, 0, 0, 0), RETA],
                b""
            ),
            8
        );
        // The network header.
        assert_eq!(
            run(&[ins(LD | B | ABS, 0, 0, NET_OFF as u32), RETA], b""),
            0x45
        );
        assert_eq!(
            run(
                &[
                    ins(LD | B | ABS, 0, 0, LL_OFF as u32),
                    ins(RET | K, 0, 0, 3)
                ],
                b""
            ),
            0
        );
    }

    #[test]
    fn alu_jumps_memory_and_returns() {
        let imm = |k| ins(LD | IMM, 0, 0, k);
        let op = |o, k| ins(ALU | o | K, 0, 0, k);
        assert_eq!(
            run(
                &[imm(7), op(ADD, 3), op(MUL, 4), op(SUB, 1), op(DIV, 3), RETA],
                b""
            ),
            13
        );
        assert_eq!(
            run(
                &[imm(0xf0), op(OR, 1), op(AND, 0x31), op(XOR, 2), RETA],
                b""
            ),
            0x33
        );
        assert_eq!(
            run(&[imm(1), op(LSH, 4), op(RSH, 1), op(MOD, 5), RETA], b""),
            3
        );
        assert_eq!(run(&[imm(1), ins(ALU | NEG, 0, 0, 0), RETA], b""), u32::MAX);
        assert_eq!(run(&[imm(0), op(SUB, 1), RETA], b""), u32::MAX);
        // Division by a zero X ends with 0; shifts by X take its low 5 bits.
        assert_eq!(
            run(
                &[imm(5), ins(ALU | DIV | X, 0, 0, 0), ins(RET | K, 0, 0, 9)],
                b""
            ),
            0
        );
        assert_eq!(
            run(
                &[imm(5), ins(ALU | MOD | X, 0, 0, 0), ins(RET | K, 0, 0, 9)],
                b""
            ),
            0
        );
        assert_eq!(
            run(
                &[
                    ins(LDX | IMM, 0, 0, 33),
                    imm(1),
                    ins(ALU | LSH | X, 0, 0, 0),
                    RETA
                ],
                b""
            ),
            2
        );
        assert_eq!(
            run(
                &[
                    ins(LDX | IMM, 0, 0, 3),
                    imm(12),
                    ins(ALU | DIV | X, 0, 0, 0),
                    ins(ALU | ADD | X, 0, 0, 0),
                    RETA
                ],
                b""
            ),
            7
        );
        // Jumps: unsigned comparisons, JSET, JA.
        let jump = |code, k| {
            run(
                &[
                    imm(0xffff_fff0),
                    ins(JMP | code | K, 1, 0, k),
                    ins(RET | K, 0, 0, 1),
                    ins(RET | K, 0, 0, 2),
                ],
                b"",
            )
        };
        assert_eq!(jump(JEQ, 0xffff_fff0), 2);
        assert_eq!(jump(JEQ, 1), 1);
        assert_eq!(jump(JGT, 5), 2);
        assert_eq!(jump(JGT, 0xffff_fff0), 1);
        assert_eq!(jump(JGE, 0xffff_fff0), 2);
        assert_eq!(jump(JSET, 0x10), 2);
        assert_eq!(jump(JSET, 0x0f), 1);
        assert_eq!(
            run(
                &[
                    ins(LDX | IMM, 0, 0, 4),
                    imm(4),
                    ins(JMP | JEQ | X, 0, 1, 0),
                    ins(RET | K, 0, 0, 1),
                    ins(RET | K, 0, 0, 2)
                ],
                b""
            ),
            1
        );
        assert_eq!(
            run(
                &[
                    ins(JMP | JA, 0, 0, 1),
                    ins(RET | K, 0, 0, 1),
                    ins(RET | K, 0, 0, 2)
                ],
                b""
            ),
            2
        );
        // Scratch memory, TAX.
        assert_eq!(
            run(
                &[
                    imm(6),
                    ins(ST, 0, 0, 15),
                    ins(MISC | TAX, 0, 0, 0),
                    ins(STX, 0, 0, 2),
                    ins(LD | MEM, 0, 0, 2),
                    ins(LDX | MEM, 0, 0, 15),
                    ins(ALU | ADD | X, 0, 0, 0),
                    RETA
                ],
                b""
            ),
            12
        );
        assert_eq!(run(&[ins(RET | K, 0, 0, 0xffff)], b""), 0xffff);
    }

    #[test]
    fn ancillary_loads() {
        let ad = |n: i32| ins(LD | W | ABS, 0, 0, (AD_OFF + n) as u32);
        assert_eq!(run(&[ad(AD_PROTOCOL), RETA], b""), 0x0800);
        assert_eq!(
            run(&[ins(LD | B | ABS, 0, 0, AD_OFF as u32), RETA], b""),
            0x0800
        );
        assert_eq!(run(&[ad(AD_IFINDEX), RETA], b""), 1);
        assert_eq!(run(&[ad(AD_HATYPE), RETA], b""), 772);
        assert_eq!(run(&[ad(AD_PKTTYPE), RETA], b""), 0);
        assert_eq!(run(&[ad(AD_PAY_OFFSET), RETA], b""), 8);
        assert_eq!(
            run(
                &[
                    ins(LD | IMM, 0, 0, 6),
                    ins(LDX | IMM, 0, 0, 3),
                    ad(AD_ALU_XOR_X),
                    RETA
                ],
                b""
            ),
            5
        );
        // A netlink attribute of type 7 after one of type 1, from offset 8.
        let attrs = [5, 0, 1, 0, 9, 0, 0, 0, 4, 0, 7, 0];
        assert_eq!(
            run(
                &[
                    ins(LD | IMM, 0, 0, 8),
                    ins(LDX | IMM, 0, 0, 7),
                    ad(AD_NLATTR),
                    RETA
                ],
                &attrs
            ),
            16
        );
        assert_eq!(
            run(
                &[
                    ins(LD | IMM, 0, 0, 8),
                    ins(LDX | IMM, 0, 0, 3),
                    ad(AD_NLATTR),
                    RETA
                ],
                &attrs
            ),
            0
        );
    }
}
