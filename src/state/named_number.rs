//! The one shape of Keel's ids and counters that are numbers with a name ([`super::NodeId`],
//! [`super::Incarnation`], [`super::Seq`], and the broker's `ConnId` and `Ticket`).

/// Declares `pub struct Name(pub u64)`: ordered, hashable, `Default` zero, displayed as the
/// bare number, and serialized as it (`transparent`), so that the log, snapshots and traces
/// hold the same bytes as the `u64` each one replaced. Each type keeps its own doc comment,
/// constants and methods beside its declaration.
macro_rules! named_number {
    ($(#[$attr:meta])* $vis:vis struct $name:ident;) => {
        $(#[$attr])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Default,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(transparent)]
        $vis struct $name(pub u64);

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

pub(crate) use named_number;

#[cfg(test)]
mod tests {
    named_number! {
        /// A number for the test.
        struct Sample;
    }

    #[test]
    fn a_named_number_is_its_number_on_the_wire_and_on_screen() {
        let sample = Sample(42);
        assert_eq!(sample.to_string(), "42");
        assert_eq!(format!("{sample:?}"), "Sample(42)");
        assert_eq!(serde_json::to_string(&sample).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Sample>("7").unwrap(), Sample(7));
        let bytes = postcard::to_allocvec(&sample).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&42u64).unwrap());
        assert!(Sample(1) < Sample(2));
        assert_eq!(Sample::default(), Sample(0));
    }
}
