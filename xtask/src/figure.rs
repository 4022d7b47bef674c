//! A measured number with its unit, formatted for the report.

use std::fmt;
use std::time::Duration;

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Microseconds (a difference of latencies far under a millisecond).
    Us,
    Ms,
    Secs,
    /// Events per second, named (`req/s`, `calls/s`, …).
    Rate(&'static str),
    MiB,
    /// A plain count (errors, processes).
    Count,
    /// A fraction shown as a percentage.
    Percent,
}

/// A number and its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fig {
    pub value: f64,
    pub unit: Unit,
}

impl Fig {
    /// The value in a unit shared by comparable figures (times in ms), for ratios.
    pub fn comparable(&self) -> f64 {
        match self.unit {
            Unit::Us => self.value / 1000.0,
            Unit::Secs => self.value * 1000.0,
            _ => self.value,
        }
    }

    pub fn us(value: f64) -> Self {
        Self {
            value,
            unit: Unit::Us,
        }
    }

    pub fn ms(value: f64) -> Self {
        Self {
            value,
            unit: Unit::Ms,
        }
    }

    pub fn duration(d: Duration) -> Self {
        Self::ms(d.as_secs_f64() * 1000.0)
    }

    pub fn secs(value: f64) -> Self {
        Self {
            value,
            unit: Unit::Secs,
        }
    }

    pub fn rate(value: f64, unit: &'static str) -> Self {
        Self {
            value,
            unit: Unit::Rate(unit),
        }
    }

    pub fn mib(value: f64) -> Self {
        Self {
            value,
            unit: Unit::MiB,
        }
    }

    pub fn count(value: u64) -> Self {
        Self {
            value: value as f64,
            unit: Unit::Count,
        }
    }

    pub fn percent(fraction: f64) -> Self {
        Self {
            value: fraction,
            unit: Unit::Percent,
        }
    }
}

/// A number with about three significant digits (`1234`, `12.3`, `0.123`).
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl fmt::Display for Fig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = number(self.value);
        match self.unit {
            Unit::Us => write!(f, "{n} µs"),
            Unit::Ms => write!(f, "{n} ms"),
            Unit::Secs => write!(f, "{n} s"),
            Unit::Rate(u) => write!(f, "{n} {u}"),
            Unit::MiB => write!(f, "{n} MiB"),
            Unit::Count => write!(f, "{}", self.value),
            Unit::Percent => write!(f, "{:.1} %", self.value * 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_units() {
        assert_eq!(Fig::ms(0.1234).to_string(), "0.123 ms");
        assert_eq!(Fig::us(-12.34).to_string(), "-12.3 µs");
        assert_eq!(Fig::us(500.0).comparable(), Fig::ms(0.5).comparable());
        assert_eq!(Fig::rate(12_345.6, "req/s").to_string(), "12346 req/s");
        assert_eq!(Fig::count(3).to_string(), "3");
        assert_eq!(Fig::percent(0.875).to_string(), "87.5 %");
        assert_eq!(Fig::secs(f64::NAN).to_string(), "n/a s");
    }
}
