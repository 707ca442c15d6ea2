//! The metrics registry every service's `/metrics` serves, and the label sets
//! more than one service counts by.

#[doc(hidden)]
pub use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Metric;

/// Declares label sets: structs of a metric family's labels, with the traits
/// `Family` needs.
#[macro_export]
macro_rules! label_sets {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident: $ty:ty,)*
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Debug, Hash, PartialEq, Eq, $crate::metrics::EncodeLabelSet)]
            $vis struct $name {
                $($(#[$field_meta])* $field_vis $field: $ty,)*
            }
        )*
    };
}

label_sets! {
    /// Label set of metrics counted by the kind of what they count.
    pub struct KindLabels {
        pub kind: &'static str,
    }

    /// Label set of metrics counted by how something ended (`ok`, `error`, ...).
    pub struct ResultLabels {
        pub result: &'static str,
    }

    /// Label set of metrics counted by why something was left out or refused.
    pub struct ReasonLabels {
        pub reason: &'static str,
    }
}

/// A histogram of durations in seconds: 16 buckets from `first` on, each
/// twice the one before.
pub fn duration_histogram(first: f64) -> Histogram {
    Histogram::new(exponential_buckets(first, 2.0, 16))
}

/// A service's metrics, registered where they are made: a service builds its
/// metrics struct with one `add` per metric, name and help beside it.
#[derive(Debug, Default)]
pub struct Registry {
    registry: prometheus_client::registry::Registry,
}

impl Registry {
    /// A registry whose metric names all start with `prefix_`.
    pub fn with_prefix(prefix: &str) -> Registry {
        Registry {
            registry: prometheus_client::registry::Registry::with_prefix(prefix),
        }
    }

    /// Registers `metric` as `name` with `help`, and returns it to be kept by
    /// the service (metrics are handles: the clone is the same metric).
    pub fn add<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.registry.register(name, help, metric.clone());
        metric
    }

    /// The OpenMetrics text of every metric, in the order they were added.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String");
        text
    }
}

/// Declares a service's metrics struct, each metric once: its doc comment is
/// its help, its name is the field's unless given (`field as "name"`), and it
/// is made by `Default` unless given (`= expression`). The struct gets `new`
/// (every metric registered under the prefix, in the order listed), `Default`
/// and `render`.
#[macro_export]
macro_rules! service_metrics {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $prefix:literal {
            $(
                #[doc = $help:literal]
                $field:ident $(as $metric:literal)?: $ty:ty $(= $make:expr)?,
            )*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            registry: $crate::metrics::Registry,
            $(#[doc = $help] pub $field: $ty,)*
        }

        impl $name {
            pub fn new() -> $name {
                let mut registry = $crate::metrics::Registry::with_prefix($prefix);
                $name {
                    $($field: registry.add(
                        $crate::__metric_name!($field $(, $metric)?),
                        $help.trim(),
                        $crate::__metric_or_default!($($make)?),
                    ),)*
                    registry,
                }
            }

            /// The text exposition (OpenMetrics) of every metric.
            pub fn render(&self) -> String {
                self.registry.render()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __metric_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $metric:literal) => {
        $metric
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __metric_or_default {
    () => {
        Default::default()
    };
    ($make:expr) => {
        $make
    };
}
