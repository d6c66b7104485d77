//! Giving freed heap back to the system.
//!
//! glibc keeps freed memory in its per-thread arenas for reuse, and under steady traffic those
//! arenas fragment: in a 45-minute soak the live heap stayed at about 40 MiB (heaptrack) while
//! the resident set crept from 71 to 98 MiB. Trimming now and then keeps the resident set close
//! to what is in use.

/// Returns free heap pages of every arena to the system. Cheap (a walk over the free lists);
/// a no-op where the allocator is not glibc's.
pub fn give_back_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_live_allocations_intact() {
        let kept: Vec<Vec<u8>> = (0..1_000u32).map(|i| vec![(i % 251) as u8; 4096]).collect();
        drop((0..1_000).map(|_| vec![0u8; 4096]).collect::<Vec<_>>());
        give_back_freed_heap();
        for (i, block) in kept.iter().enumerate() {
            assert!(block.iter().all(|&b| b == (i % 251) as u8));
        }
    }
}
