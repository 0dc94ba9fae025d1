//! Resource quantities (`512Mi`, `1G`, `500m`, `2`) turned into Docker limits.

fn split_number(q: &str) -> Option<(f64, &str)> {
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let number: f64 = q[..end].parse().ok()?;
    Some((number, &q[end..]))
}

/// Bytes of a memory quantity.
pub fn memory_bytes(q: &str) -> Option<i64> {
    let (number, suffix) = split_number(q.trim())?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "m" => 1e-3,
        _ => return None,
    };
    Some((number * factor) as i64)
}

/// Nano-CPUs of a CPU quantity (`1` = 1e9, `500m` = 5e8).
pub fn nano_cpus(q: &str) -> Option<i64> {
    let (number, suffix) = split_number(q.trim())?;
    let factor = match suffix {
        "" => 1e9,
        "m" => 1e6,
        _ => return None,
    };
    Some((number * factor) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("1000"), Some(1000));
        assert_eq!(memory_bytes("1.5Gi"), Some(1_610_612_736));
        assert_eq!(memory_bytes("lots"), None);
    }

    #[test]
    fn cpu() {
        assert_eq!(nano_cpus("500m"), Some(500_000_000));
        assert_eq!(nano_cpus("2"), Some(2_000_000_000));
        assert_eq!(nano_cpus("0.25"), Some(250_000_000));
        assert_eq!(nano_cpus("1x"), None);
    }
}
