//! A process's memory and TCP connections, from /proc (Linux).

use std::collections::HashSet;

/// `VmHWM` and `VmRSS` of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The established TCP connections `pid` holds to `port` on any address: its socket inodes (from its file
/// descriptors) matched against the namespace's socket tables.
pub fn established_to(pid: u32, port: u16) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let inodes: HashSet<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "01" || !inodes.contains(fields[9]) {
                continue;
            }
            let remote_port = fields[2]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) {
                count += 1;
            }
        }
    }
    count
}

/// `pid` itself, or the first process below it whose command name is `name` (the operator started by a
/// wrapper such as a heap profiler), once it exists.
pub fn process_named(pid: u32, name: &str) -> Option<u32> {
    let comm = |p: u32| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    let mut below = vec![pid];
    while let Some(p) = below.pop() {
        if comm(p).is_some_and(|c| c.trim_end() == name) {
            return Some(p);
        }
        let children = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        below.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
    None
}
