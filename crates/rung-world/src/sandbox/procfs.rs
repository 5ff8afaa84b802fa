//! Memory figures the kernel keeps in `/proc` (Linux): what the limits are set from and what the
//! tests and the fuzzer check them against.

/// The value of a `Key:   N kB` line of a `/proc` file, in bytes.
pub fn kib_field(text: &str, key: &str) -> Option<u64> {
    let kib: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib << 10)
}

/// A field of `/proc/<process>/status` in bytes (`process` is a pid or `self`), e.g. `VmRSS`
/// (resident now), `VmHWM` (peak resident), `VmSize` (address space).
pub fn status_bytes(process: &str, key: &str) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{process}/status")).ok()?,
        key,
    )
}

/// The machine's physical memory (`MemTotal` of `/proc/meminfo`).
pub fn machine_memory_bytes() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal")
}

/// The largest peak resident memory of any child process this process has reaped.
pub fn reaped_children_peak_bytes() -> Option<u64> {
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0;
    ok.then_some((usage.ru_maxrss as u64) << 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_in_bytes() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t1 kB\n";
        assert_eq!(kib_field(text, "VmHWM"), Some(2 << 20));
        assert_eq!(kib_field(text, "VmRSS"), Some(1024));
        assert_eq!(kib_field(text, "VmSize"), None);
        assert!(status_bytes("self", "VmRSS").unwrap() > 0);
        assert!(machine_memory_bytes().unwrap() > 1 << 20);
    }
}
