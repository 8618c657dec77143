//! Enums stored and shown as one of a fixed set of words.
//!
//! `text_enum!` declares the enum together with everything that crosses an
//! edge: its word (`as_str`, `Display`, `FromStr`), JSON (serde, by word),
//! its OpenAPI schema (an `enum` of the words, derived, so the document can
//! never list a word the code does not know), and Postgres `text` columns
//! (sqlx encode and decode; a word the enum does not know fails to decode
//! rather than becoming a default).

/// A word that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {kind} (expected one of: {expected})")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
    pub expected: String,
}

// The words are matched as `tt`, not `literal`: a `literal` fragment reaches
// the derives wrapped in an invisible group, and utoipa then ignores the
// `serde(rename)` and documents the variants' Rust names instead.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }

            pub fn parse(word: &str) -> Result<Self, $crate::domain::UnknownWord> {
                match word {
                    $( $word => Ok($name::$variant), )+
                    _ => Err($crate::domain::UnknownWord {
                        kind: $kind,
                        word: word.chars().take(64).collect(),
                        expected: [$($word),+].join(", "),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let word = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(Self::parse(word)?)
            }
        }
    };
}

pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use crate::domain::*;

    /// The words an enum's OpenAPI schema lists.
    fn schema_words<T: utoipa::PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no enum in {schema}"))
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect()
    }

    macro_rules! documents_its_words {
        ($($name:ident),+) => {$(
            assert_eq!(
                schema_words::<$name>(),
                $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                stringify!($name)
            );
        )+};
    }

    #[test]
    fn every_text_enum_documents_the_words_it_reads_and_writes() {
        documents_its_words!(
            Event,
            ConversionStatus,
            AttributionSource,
            ConversionReason,
            FraudSignal,
            EnrollmentStatus,
            EnrollmentAction,
            EnrollmentReason,
            EarningEvent,
            CommissionStatus,
            Bucket,
            LedgerKind,
            Platform
        );
    }
}
