//! Entity names: the built-in detector types and the rules for operator-defined names.
//!
//! An entity is identified inside a compiled scanner by a small integer ([`EntityId`]): the
//! built-ins keep their [`Builtin`] discriminant (0..[`BUILTIN_COUNT`]) and operator names are appended after
//! them, so a finding is three machine words and never carries text.

/// Index of an entity in a scanner's name table; see [`crate::scan::Scanner::entity_name`].
pub type EntityId = u16;

/// Longest accepted entity name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The built-in entity types, in the order `builtin_entities()` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Builtin {
    /// An e-mail address (`local@domain.tld`).
    Email = 0,
    /// A telephone number: `+` international, NANP, trunk-`0` national, or digits after a phone word.
    Phone,
    /// A US social security number that passes the area/group/serial rules.
    UsSsn,
    /// A payment card number: known issuer prefix, length, and Luhn check.
    CreditCard,
    /// An IBAN: known country length and mod-97 check.
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKeyId,
    /// A 40-character AWS secret access key next to a key name.
    AwsSecretAccessKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A Slack token (`xox?-`, `xapp-`) or incoming-webhook URL.
    SlackToken,
    /// An OpenAI API key (`sk-proj-…`, `sk-…T3BlbkFJ…`).
    OpenaiApiKey,
    /// An Anthropic API key (`sk-ant-…`).
    AnthropicApiKey,
    /// A Stripe secret or restricted key (`sk_live_`, `rk_test_`, …).
    StripeKey,
    /// A Google API key (`AIza…`).
    GoogleApiKey,
    /// A PEM or PGP private key block.
    PrivateKey,
    /// A JSON Web Token.
    Jwt,
    /// A personal name in running text (`names/person.rs`); opt-in.
    Person,
    /// A postal street address, with its postcode and city when they follow (`names/address.rs`); opt-in.
    Address,
    /// A date right after a date-of-birth cue (`born`, `DOB`, `geboren`, `né le`, …); opt-in.
    DateOfBirth,
    /// A German tax identification number (Steuer-IdNr) after one of its names (`natid.rs`).
    DeTaxId,
    /// A French social security number (NIR) with its key.
    FrNir,
    /// A Spanish DNI with its control letter.
    EsDni,
    /// A Spanish foreigner's number (NIE) with its control letter.
    EsNie,
    /// An Italian codice fiscale with its check character.
    ItFiscalCode,
    /// A Dutch citizen service number (BSN) after one of its names.
    NlBsn,
    /// A Polish PESEL after its name.
    PlPesel,
    /// A Swedish personnummer or samordningsnummer after one of its names.
    SePersonnummer,
    /// A Belgian national register number after one of its names.
    BeNationalNumber,
    /// A Finnish personal identity code (henkilötunnus) with its check character.
    FiHetu,
    /// An Austrian social security number (Sozialversicherungsnummer) after one of its names.
    AtSvnr,
}

/// How many built-ins there are.
pub const BUILTIN_COUNT: usize = 30;

impl Builtin {
    /// Every built-in, in id order.
    pub const ALL: [Builtin; BUILTIN_COUNT] = [
        Builtin::Email,
        Builtin::Phone,
        Builtin::UsSsn,
        Builtin::CreditCard,
        Builtin::Iban,
        Builtin::IpAddress,
        Builtin::AwsAccessKeyId,
        Builtin::AwsSecretAccessKey,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::OpenaiApiKey,
        Builtin::AnthropicApiKey,
        Builtin::StripeKey,
        Builtin::GoogleApiKey,
        Builtin::PrivateKey,
        Builtin::Jwt,
        Builtin::Person,
        Builtin::Address,
        Builtin::DateOfBirth,
        Builtin::DeTaxId,
        Builtin::FrNir,
        Builtin::EsDni,
        Builtin::EsNie,
        Builtin::ItFiscalCode,
        Builtin::NlBsn,
        Builtin::PlPesel,
        Builtin::SePersonnummer,
        Builtin::BeNationalNumber,
        Builtin::FiHetu,
        Builtin::AtSvnr,
    ];

    /// The UPPER_SNAKE name used in findings and placeholders.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::Email => "EMAIL",
            Builtin::Phone => "PHONE",
            Builtin::UsSsn => "US_SSN",
            Builtin::CreditCard => "CREDIT_CARD",
            Builtin::Iban => "IBAN",
            Builtin::IpAddress => "IP_ADDRESS",
            Builtin::AwsAccessKeyId => "AWS_ACCESS_KEY_ID",
            Builtin::AwsSecretAccessKey => "AWS_SECRET_ACCESS_KEY",
            Builtin::GithubToken => "GITHUB_TOKEN",
            Builtin::SlackToken => "SLACK_TOKEN",
            Builtin::OpenaiApiKey => "OPENAI_API_KEY",
            Builtin::AnthropicApiKey => "ANTHROPIC_API_KEY",
            Builtin::StripeKey => "STRIPE_KEY",
            Builtin::GoogleApiKey => "GOOGLE_API_KEY",
            Builtin::PrivateKey => "PRIVATE_KEY",
            Builtin::Jwt => "JWT",
            Builtin::Person => "PERSON",
            Builtin::Address => "ADDRESS",
            Builtin::DateOfBirth => "DATE_OF_BIRTH",
            Builtin::DeTaxId => "DE_TAX_ID",
            Builtin::FrNir => "FR_NIR",
            Builtin::EsDni => "ES_DNI",
            Builtin::EsNie => "ES_NIE",
            Builtin::ItFiscalCode => "IT_FISCAL_CODE",
            Builtin::NlBsn => "NL_BSN",
            Builtin::PlPesel => "PL_PESEL",
            Builtin::SePersonnummer => "SE_PERSONNUMMER",
            Builtin::BeNationalNumber => "BE_NATIONAL_NUMBER",
            Builtin::FiHetu => "FI_HETU",
            Builtin::AtSvnr => "AT_SVNR",
        }
    }

    /// The built-in called `name`, if any.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether a scanner compiled without an entity list detects it. `PERSON`, `ADDRESS` and
    /// `DATE_OF_BIRTH` are heuristics (lower precision than the validated types, `PERSON` and
    /// `ADDRESS` a few times slower on prose), so they run only when named. The national ids are
    /// on: each is checked by its check digit or letter, and the weak ones also need their name
    /// before them.
    pub const fn on_by_default(self) -> bool {
        !matches!(self, Builtin::Person | Builtin::Address | Builtin::DateOfBirth)
    }

    /// How sure a finding of this type is, 0 to 100, when its parser does not grade it: 95 for a
    /// value a check digit, checksum or fixed issuer prefix confirms (card, IBAN, the keys, the
    /// strong national ids), lower for shapes that only context or format confirm. `PERSON`,
    /// `ADDRESS` and the bare-digit SSN are graded by their parsers (`names/`, `pii.rs`: nine
    /// digits after an SSN word are 70); the values here are their upper bounds.
    pub const fn confidence(self) -> u8 {
        match self {
            Builtin::CreditCard
            | Builtin::Iban
            | Builtin::AwsAccessKeyId
            | Builtin::GithubToken
            | Builtin::SlackToken
            | Builtin::OpenaiApiKey
            | Builtin::AnthropicApiKey
            | Builtin::StripeKey
            | Builtin::GoogleApiKey
            | Builtin::PrivateKey
            | Builtin::FrNir
            | Builtin::EsDni
            | Builtin::EsNie
            | Builtin::ItFiscalCode
            | Builtin::FiHetu => 95,
            Builtin::Email | Builtin::Jwt | Builtin::UsSsn | Builtin::Person | Builtin::Address => 90,
            Builtin::AwsSecretAccessKey | Builtin::IpAddress | Builtin::DateOfBirth => 85,
            // a check digit of 1 in 11 to 1 in 400, and the id's name before it
            Builtin::DeTaxId
            | Builtin::NlBsn
            | Builtin::PlPesel
            | Builtin::SePersonnummer
            | Builtin::BeNationalNumber
            | Builtin::AtSvnr => 80,
            Builtin::Phone => 75,
        }
    }

    /// The confidence below which a finding of this type is not acted on when the rules set no
    /// `min_confidence`: 0 for every type but `PERSON`, whose weakest evidence (one capitalised
    /// word after a greeting, a given name inside a run of capitalised words) is mostly look-alikes
    /// (docs/redaction-types.md, "Confidence").
    pub const fn default_min_confidence(self) -> u8 {
        match self {
            Builtin::Person => 50,
            _ => 0,
        }
    }

    /// This built-in's id in every scanner's name table.
    pub const fn id(self) -> EntityId {
        self as EntityId
    }
}

/// Whether `name` is a well-formed entity name: `[A-Z][A-Z0-9_]*`, at most [`MAX_NAME_LEN`] bytes.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_id_order() {
        for (i, b) in Builtin::ALL.iter().enumerate() {
            assert_eq!(b.id() as usize, i);
            assert_eq!(Builtin::from_name(b.name()), Some(*b));
            assert!(is_valid_name(b.name()));
        }
        assert_eq!(Builtin::from_name("email"), None);
    }

    macro_rules! t {
        ($name:ident, $input:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(is_valid_name($input), $want, "{:?}", $input);
            }
        };
    }
    t!(name010, "EMPLOYEE_ID", true);
    t!(name020, "X", true);
    t!(name030, "A1_B2", true);
    t!(name040, "", false);
    t!(name050, "employee_id", false);
    t!(name060, "_X", false);
    t!(name070, "1X", false);
    t!(name080, "A-B", false);
    t!(name090, "ÄB", false);
    t!(name100, &"A".repeat(65), false);
}
