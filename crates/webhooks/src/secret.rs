//! The endpoint signing secret in the Standard Webhooks form: `whsec_` followed by the
//! standard base64 of the key.
//!
//! The prefix is what lets a person (or a secret scanner) recognise the value, so a string
//! without it is refused rather than guessed at. The specification asks for keys of 24 to 64
//! bytes (192 to 512 bits); anything outside that range is refused with the length it had.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rand::RngCore as _;

/// The prefix every serialized secret starts with.
pub const PREFIX: &str = "whsec_";
/// The shortest key the specification accepts (192 bits).
pub const MIN_KEY_BYTES: usize = 24;
/// The longest key the specification accepts (512 bits).
pub const MAX_KEY_BYTES: usize = 64;
/// The length of a key made by [`SigningSecret::generate`] (256 bits, SHA-256's block of
/// security).
pub const GENERATED_KEY_BYTES: usize = 32;

/// Other libraries print secrets with padding but some people paste them without; both
/// spellings of the same key are accepted.
const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a string is not a signing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a signing secret starts with `{PREFIX}`")]
    MissingPrefix,
    #[error("the part after `{PREFIX}` is not standard base64: {0}")]
    InvalidBase64(#[from] base64::DecodeError),
    #[error("the key is {len} bytes; a signing key has at least {MIN_KEY_BYTES}")]
    TooShort { len: usize },
    #[error("the key is {len} bytes; a signing key has at most {MAX_KEY_BYTES}")]
    TooLong { len: usize },
}

/// An HMAC-SHA256 key for signing deliveries to one endpoint.
///
/// `Display` gives the `whsec_…` serialization, which is what a tenant is shown once and what
/// is stored; `Debug` never shows the key, so a secret inside a logged struct stays secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// Parses the `whsec_<base64>` form.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = LENIENT_PADDING.decode(encoded)?;
        Self::from_key(key)
    }

    /// Wraps raw key bytes, with the same length rules as [`SigningSecret::parse`].
    pub fn from_key(key: Vec<u8>) -> Result<Self, SecretError> {
        match key.len() {
            len if len < MIN_KEY_BYTES => Err(SecretError::TooShort { len }),
            len if len > MAX_KEY_BYTES => Err(SecretError::TooLong { len }),
            _ => Ok(Self { key }),
        }
    }

    /// A fresh key of [`GENERATED_KEY_BYTES`] bytes from `rand`'s thread generator, a
    /// cryptographically secure generator seeded and periodically reseeded from the operating
    /// system.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }

    /// The raw key, for computing signatures.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for SigningSecret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Padded, as the reference libraries print secrets.
impl fmt::Display for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", STANDARD.encode(&self.key))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningSecret({PREFIX}<redacted {} bytes>)",
            self.key.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn parses_the_specification_secret_and_prints_it_back() {
        let secret = SigningSecret::parse(VECTOR).expect("the specification's secret parses");
        assert_eq!(secret.key().len(), 24);
        assert_eq!(secret.to_string(), VECTOR);
    }

    #[test]
    fn accepts_the_same_key_without_padding() {
        let padded = SigningSecret::generate();
        let unpadded = padded.to_string().trim_end_matches('=').to_owned();
        assert_eq!(SigningSecret::parse(&unpadded), Ok(padded));
    }

    #[test]
    fn refuses_a_string_without_the_prefix() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            SigningSecret::parse("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
    }

    #[test]
    fn refuses_bad_base64() {
        for text in ["whsec_not base64!", "whsec_abc$", "whsec_a", "whsec_-_-_"] {
            assert!(
                matches!(
                    SigningSecret::parse(text),
                    Err(SecretError::InvalidBase64(_))
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_keys_outside_24_to_64_bytes_saying_how_long_they_were() {
        let encode = |len: usize| format!("{PREFIX}{}", STANDARD.encode(vec![7u8; len]));
        assert_eq!(
            SigningSecret::parse(&encode(23)),
            Err(SecretError::TooShort { len: 23 })
        );
        assert_eq!(
            SigningSecret::parse("whsec_"),
            Err(SecretError::TooShort { len: 0 })
        );
        assert!(SigningSecret::parse(&encode(24)).is_ok());
        assert!(SigningSecret::parse(&encode(64)).is_ok());
        assert_eq!(
            SigningSecret::parse(&encode(65)),
            Err(SecretError::TooLong { len: 65 })
        );
    }

    #[test]
    fn generated_secrets_are_32_bytes_and_differ() {
        let first = SigningSecret::generate();
        let second = SigningSecret::generate();
        assert_eq!(first.key().len(), GENERATED_KEY_BYTES);
        assert_ne!(first, second);
        assert_eq!(SigningSecret::parse(&first.to_string()), Ok(first));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = SigningSecret::parse(VECTOR).expect("the specification's secret parses");
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(
            !printed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{printed}"
        );
        assert!(printed.contains("redacted"), "{printed}");
    }
}
