//! 64-byte block classification for the splitter: one bit per byte for quotes, backslashes,
//! opening and closing brackets, and line breaks. The splitter turns these into "inside a
//! string" masks with a prefix XOR and walks only the brackets outside strings, instead of
//! looking at every byte (the technique of simdjson's stage 1, reduced to what record
//! boundaries need).
//!
//! On x86_64 the masks come from SSE2, which every x86_64 CPU has, so there is no runtime
//! dispatch and no `target-cpu` requirement for the release image. Elsewhere the splitter keeps
//! its byte loop ([`ENABLED`]); the portable masks are the reference the SSE2 ones are tested
//! against.

/// Bit `i` describes byte `i` of the block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// `{` or `[`.
    pub open: u64,
    /// `}` or `]`.
    pub close: u64,
    /// `\n` or `\r`.
    pub line: u64,
}

pub(crate) const BLOCK: usize = 64;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn masks(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available;
    // every load reads 16 bytes at offsets 0, 16, 32 and 48 of a 64-byte array (unaligned
    // loads, in bounds).
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        // `{`/`[` and `}`/`]` differ only in bit 5: OR-ing it in folds each pair into one
        // compare, and no other byte folds onto 0x7b or 0x7d.
        let fold = _mm_set1_epi8(0x20);
        let open = _mm_set1_epi8(0x7b);
        let close = _mm_set1_epi8(0x7d);
        let lf = _mm_set1_epi8(b'\n' as i8);
        let cr = _mm_set1_epi8(b'\r' as i8);
        let mut m = Masks::default();
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
            let folded = _mm_or_si128(v, fold);
            let bits = |x: __m128i| (_mm_movemask_epi8(x) as u32 as u64) << (16 * k);
            m.quote |= bits(_mm_cmpeq_epi8(v, quote));
            m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
            m.open |= bits(_mm_cmpeq_epi8(folded, open));
            m.close |= bits(_mm_cmpeq_epi8(folded, close));
            m.line |= bits(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
        }
        m
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn masks(block: &[u8; BLOCK]) -> Masks {
    portable_masks(block)
}

/// Whether the splitter uses blocks. The portable masks are three times slower than the byte
/// loop (measured on x86_64), so targets without a SIMD version keep the byte loop; aarch64
/// (NEON) is the next one worth writing.
pub(crate) const ENABLED: bool = cfg!(target_arch = "x86_64");

/// The reference definition of [`masks`]; the SSE2 version is tested against it.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
#[inline(always)]
pub(crate) fn portable_masks(block: &[u8; BLOCK]) -> Masks {
    // Branch-free, so the compiler can vectorise it where it knows the target's SIMD.
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let folded = b | 0x20;
        m.quote |= u64::from(b == b'"') << i;
        m.backslash |= u64::from(b == b'\\') << i;
        m.open |= u64::from(folded == b'{') << i;
        m.close |= u64::from(folded == b'}') << i;
        m.line |= u64::from(b == b'\n' || b == b'\r') << i;
    }
    m
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `x`: with `x` the (unescaped) quotes,
/// that is "inside a string" counting the opening quote in and the closing quote out.
#[inline(always)]
pub(crate) fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes escaped by a backslash: those right after an odd-length run of backslashes
/// (simdjson's `find_odd_backslash_sequences`, with no run carried in). The flag says the block
/// ends inside an odd run, so the first byte of what follows is escaped.
#[inline(always)]
pub(crate) fn escaped_by_backslashes(backslash: u64) -> (u64, bool) {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    const ODD: u64 = !EVEN;
    let starts = backslash & !(backslash << 1);
    let even_starts = starts & EVEN;
    let odd_starts = starts & ODD;
    // Adding a run's start bit to the run carries into the byte after it.
    let even_carries = backslash.wrapping_add(even_starts);
    let (odd_carries, ends_odd) = backslash.overflowing_add(odd_starts);
    let even_start_odd_end = even_carries & !backslash & ODD;
    let odd_start_even_end = odd_carries & !backslash & EVEN;
    (even_start_odd_end | odd_start_even_end, ends_odd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_xor_marks_string_interiors() {
        // `a"bc"d`: quotes at 1 and 4, interior 1..4.
        assert_eq!(prefix_xor(0b10010), 0b01110);
        assert_eq!(prefix_xor(0), 0);
        assert_eq!(prefix_xor(1 << 63), 1 << 63);
    }

    /// The definition: a byte is escaped when an odd number of backslashes precede it.
    fn escaped_reference(backslash: u64) -> (u64, bool) {
        let mut escaped = 0;
        let mut run = 0;
        for i in 0..64 {
            if backslash & (1 << i) != 0 {
                run += 1;
            } else {
                if run % 2 == 1 {
                    escaped |= 1 << i;
                }
                run = 0;
            }
        }
        (escaped, run % 2 == 1)
    }

    #[test]
    fn escapes_at_the_edges() {
        for bs in [
            0,
            1,
            3,
            1 << 63,
            3 << 62,
            7 << 61,
            !0,
            !0 >> 1,
            0b1011_0111,
            0x5555_5555_5555_5555,
        ] {
            assert_eq!(
                escaped_by_backslashes(bs),
                escaped_reference(bs),
                "{bs:#066b}"
            );
        }
    }

    proptest! {
        #[test]
        fn escapes_equal_the_definition(bs in any::<u64>(), runs in any::<u64>()) {
            // Random words have short runs; OR-ing shifted copies makes long ones too.
            for x in [bs, bs | (bs << 1) | (bs << 2), bs & runs, bs | runs | (runs << 3)] {
                prop_assert_eq!(escaped_by_backslashes(x), escaped_reference(x));
            }
        }

        #[test]
        fn simd_masks_equal_the_reference(
            bytes in prop::collection::vec(
                prop_oneof![
                    Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'['), Just(b'}'), Just(b']'),
                    Just(b'\n'), Just(b'\r'), Just(b';'), Just(b'='), Just(b'{' ^ 0x20),
                    any::<u8>(),
                ],
                BLOCK,
            )
        ) {
            let block: [u8; BLOCK] = bytes.try_into().expect("64 bytes generated");
            prop_assert_eq!(masks(&block), portable_masks(&block));
        }
    }
}
