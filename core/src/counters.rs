//! counters: every counter wwatchd keeps is declared once, with [`counters!`](crate::counters!), and every
//! report (scan's summary line, the daemon's status file, its summary diagnostics, its loss
//! warnings, the man page test) is rendered from that declaration.

/// What a counter measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Things seen or done.
    Count,
    /// A level now, not a total.
    Gauge,
    /// Records, events or alerts lost: any increase is reported as a loss.
    Loss,
}

/// One declared counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Its name in the status file and diagnostics (`snake_case`).
    pub name: &'static str,
    pub kind: Kind,
    /// What it counts, from the declaration's doc comment.
    pub doc: &'static str,
}

impl Counter {
    /// Its name in `scan`'s summary line (`kebab-case`).
    pub fn summary_name(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// Declares a plain counter struct and, optionally, a shared atomic twin:
///
/// ```
/// wwatchd_core::counters! {
///     /// Example counters.
///     pub struct Example / ExampleShared {
///         /// Things seen.
///         seen: Count,
///         /// Things lost.
///         lost: Loss,
///     }
/// }
/// let s = ExampleShared::default();
/// s.seen.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
/// assert_eq!(s.snapshot().seen, 2);
/// assert_eq!(Example::FIELDS[1].name, "lost");
/// ```
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident / $shared:ident {
            $( $(#[doc = $doc:literal])* $field:ident : $kind:ident ),* $(,)?
        }
    ) => {
        $crate::counters! {
            $(#[$meta])*
            $vis struct $name {
                $( $(#[doc = $doc])* $field : $kind ),*
            }
        }

        /// The shared, atomic form of the counters, for several threads.
        #[derive(Debug, Default)]
        $vis struct $shared {
            $( $(#[doc = $doc])* pub $field: ::std::sync::atomic::AtomicU64, )*
        }

        impl $shared {
            /// The values now.
            pub fn snapshot(&self) -> $name {
                $name {
                    $( $field: self.$field.load(::std::sync::atomic::Ordering::Relaxed), )*
                }
            }

            /// Stores every value of `v`.
            pub fn store(&self, v: &$name) {
                $( self.$field.store(v.$field, ::std::sync::atomic::Ordering::Relaxed); )*
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident : $kind:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl $name {
            /// Every counter, in declaration order.
            pub const FIELDS: &'static [$crate::counters::Counter] = &[
                $( $crate::counters::Counter {
                    name: stringify!($field),
                    kind: $crate::counters::Kind::$kind,
                    doc: concat!($($doc),*),
                }, )*
            ];

            /// The values, in the order of [`Self::FIELDS`].
            pub fn values(&self) -> ::std::vec::Vec<u64> {
                ::std::vec![$( self.$field ),*]
            }

            /// `(counter, value)` pairs, in declaration order.
            pub fn pairs(&self) -> ::std::vec::Vec<(&'static $crate::counters::Counter, u64)> {
                Self::FIELDS.iter().zip(self.values()).collect()
            }
        }
    };
}
