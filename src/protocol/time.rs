//! [`UnixMillis`]: a wall-clock instant as whole milliseconds since the unix
//! epoch, the one form every timestamp of the protocol takes on the wire
//! (`at`, `modified`, `validTill`, `serverTime`, …). Durations stay
//! [`Duration`]s.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A wall-clock instant in whole milliseconds since 1970-01-01 00:00 UTC.
///
/// On the wire it is a bare JSON number (`#[serde(transparent)]`), so
/// `{"at":1700000000000}` reads as `UnixMillis::from_millis(1_700_000_000_000)`.
/// Conversions from [`SystemTime`] saturate instead of panicking: an instant
/// before 1970 is [`UnixMillis::EPOCH`], one beyond `u64::MAX` ms is
/// [`UnixMillis::MAX`] (which the store also uses for "never").
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use effex::protocol::time::UnixMillis;
///
/// let at = UnixMillis::from_millis(1_700_000_000_000);
/// assert_eq!(serde_json::to_string(&at).unwrap(), "1700000000000");
/// assert_eq!(at.to_string(), "1700000000000");
/// assert_eq!(at.to_system_time(), UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
///
/// let later = at.saturating_add(Duration::from_secs(2));
/// assert_eq!(later.duration_since(at), Duration::from_secs(2));
/// assert_eq!(at.duration_since(later), Duration::ZERO);
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(u64);

impl UnixMillis {
    /// 1970-01-01 00:00 UTC.
    pub const EPOCH: UnixMillis = UnixMillis(0);

    /// The latest representable instant; the store reports it for "never"
    /// (e.g. the expiry of a key a store cannot tell).
    pub const MAX: UnixMillis = UnixMillis(u64::MAX);

    /// The instant `millis` ms after the epoch.
    ///
    /// ```
    /// use effex::protocol::time::UnixMillis;
    /// assert_eq!(UnixMillis::from_millis(5).as_millis(), 5);
    /// ```
    pub const fn from_millis(millis: u64) -> Self {
        UnixMillis(millis)
    }

    /// Milliseconds since the epoch.
    ///
    /// ```
    /// use effex::protocol::time::UnixMillis;
    /// assert_eq!(UnixMillis::EPOCH.as_millis(), 0);
    /// ```
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The system clock now (the epoch if it is set before 1970).
    ///
    /// ```
    /// use effex::protocol::time::UnixMillis;
    /// assert!(UnixMillis::now() > UnixMillis::from_millis(1_600_000_000_000));
    /// ```
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// `time` in whole ms since the epoch, saturating: before 1970 is
    /// [`EPOCH`](Self::EPOCH), beyond `u64::MAX` ms is [`MAX`](Self::MAX).
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use effex::protocol::time::UnixMillis;
    ///
    /// let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
    /// assert_eq!(UnixMillis::from_system_time(before_1970), UnixMillis::EPOCH);
    /// let t = UNIX_EPOCH + Duration::from_micros(2_999);
    /// assert_eq!(UnixMillis::from_system_time(t).as_millis(), 2);
    /// ```
    pub fn from_system_time(time: SystemTime) -> Self {
        time.duration_since(UNIX_EPOCH)
            .map_or(Self::EPOCH, |since| UnixMillis(whole_millis(since)))
    }

    /// The same instant as a [`SystemTime`] (saturating at the latest
    /// instant the platform's `SystemTime` can hold).
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use effex::protocol::time::UnixMillis;
    ///
    /// assert_eq!(UnixMillis::from_millis(1_500).to_system_time(), UNIX_EPOCH + Duration::from_millis(1_500));
    /// let never = UnixMillis::MAX.to_system_time(); // no panic
    /// assert!(never > UNIX_EPOCH);
    /// ```
    pub fn to_system_time(self) -> SystemTime {
        let mut since = Duration::from_millis(self.0);
        loop {
            if let Some(time) = UNIX_EPOCH.checked_add(since) {
                return time;
            }
            // Too far for this platform's SystemTime: halve until it fits
            // (at most 64 rounds; `UNIX_EPOCH + 0` always fits).
            since /= 2;
        }
    }

    /// `self + d`, saturating at [`MAX`](Self::MAX).
    ///
    /// ```
    /// use std::time::Duration;
    /// use effex::protocol::time::UnixMillis;
    ///
    /// assert_eq!(UnixMillis::from_millis(1).saturating_add(Duration::from_millis(2)).as_millis(), 3);
    /// assert_eq!(UnixMillis::MAX.saturating_add(Duration::from_secs(1)), UnixMillis::MAX);
    /// ```
    pub fn saturating_add(self, d: Duration) -> Self {
        UnixMillis(self.0.saturating_add(whole_millis(d)))
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use effex::protocol::time::UnixMillis;
    ///
    /// let (a, b) = (UnixMillis::from_millis(1_000), UnixMillis::from_millis(1_250));
    /// assert_eq!(b.duration_since(a), Duration::from_millis(250));
    /// assert_eq!(a.duration_since(b), Duration::ZERO);
    /// ```
    pub fn duration_since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`.
pub(crate) fn whole_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for UnixMillis {
    /// The bare number of milliseconds, as on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<SystemTime> for UnixMillis {
    /// Saturating, as [`UnixMillis::from_system_time`].
    fn from(time: SystemTime) -> Self {
        Self::from_system_time(time)
    }
}

impl From<UnixMillis> for SystemTime {
    /// Saturating, as [`UnixMillis::to_system_time`].
    fn from(at: UnixMillis) -> Self {
        at.to_system_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_a_bare_number() {
        let at = UnixMillis::from_millis(1_700_000_000_123);
        assert_eq!(serde_json::to_string(&at).unwrap(), "1700000000123");
        assert_eq!(
            serde_json::from_str::<UnixMillis>("1700000000123").unwrap(),
            at
        );
        assert_eq!(
            serde_json::to_string(&UnixMillis::MAX).unwrap(),
            u64::MAX.to_string()
        );
        assert!(serde_json::from_str::<UnixMillis>("-1").is_err());
        assert!(serde_json::from_str::<UnixMillis>("\"1\"").is_err());
    }

    #[test]
    fn system_times_saturate_instead_of_panicking() {
        let long_ago = UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 100);
        assert_eq!(UnixMillis::from_system_time(long_ago), UnixMillis::EPOCH);
        assert_eq!(UnixMillis::from(long_ago), UnixMillis::EPOCH);
        // Beyond u64::MAX ms, where the platform's SystemTime reaches that far.
        if let Some(far) = UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 100)) {
            assert_eq!(UnixMillis::from_system_time(far), UnixMillis::MAX);
        }
        let never: SystemTime = UnixMillis::MAX.into();
        assert!(never > SystemTime::now());
        let round = UnixMillis::from_millis(1_234_567);
        assert_eq!(UnixMillis::from(SystemTime::from(round)), round);
    }

    #[test]
    fn arithmetic_saturates() {
        let at = UnixMillis::from_millis(10);
        assert_eq!(
            at.saturating_add(Duration::MAX),
            UnixMillis::MAX,
            "Duration::MAX is beyond u64 ms"
        );
        assert_eq!(
            at.saturating_add(Duration::from_micros(1_999)).as_millis(),
            11
        );
        assert_eq!(UnixMillis::EPOCH.duration_since(at), Duration::ZERO);
        assert!(UnixMillis::EPOCH < at && at < UnixMillis::MAX);
    }
}
