//! The word lists of the parsers (titles, cue phrases, stop words, street words, units, …) and
//! the sets built from them once.

use std::sync::OnceLock;

use super::lexicon::Set;
use super::person::{HEADS, LEGAL, MAKES, TRADE_AFTER, TRADE_BEFORE};
use super::read::{lower, Low};

/// Titles and honorifics (compared exactly; a trailing `.` is optional, except for the short ones
/// not in [`DOTLESS`](super::person::DOTLESS)).
#[rustfmt::skip]
const TITLES: &[&str] = &[
    "Mr", "Mrs", "Ms", "Mx", "Miss", "Dr", "Prof", "Sir", "Dame", "Lady", "Lord", "Herr", "Herrn", "Frau", "Fr",
    "Hr", "M", "MM", "Mme", "Mmes", "Mlle", "Monsieur", "Madame", "Mademoiselle", "Me", "Sr", "Sra", "Srta", "Dn",
    "Dña", "Don", "Doña", "Señor", "Señora", "señor", "señora", "Sig", "Sigg", "Sig.ra", "Sig.na", "Signor",
    "Signora", "signor", "signora", "Dott", "Dott.ssa", "Avv", "Ing", "Dhr", "Mevr", "Mw", "mevrouw", "meneer",
    "Pan", "Pani", "pan", "pani", "Panu", "Panem", "Sr.ª", "Senhor", "Senhora", "senhor", "senhora", "Dona", "Fru",
    "fru", "herr", "Fröken",
    // the Polish `Pan`/`Pani` in their other cases (`do Pana Nowaka`, `z Panią Kowalską`)
    "Pana", "pana", "Panią", "panią", "Panie", "panie", "Państwo", "państwo", "Państwa", "państwa",
];

/// Cue phrases that end right before a name (lower case; compared ignoring ASCII case).
#[rustfmt::skip]
pub(super) const CUES: &[&str] = &[
    "my name is", "name is", "name:", "named", "customer", "client", "patient", "employee", "applicant",
    "contact person", "dear", "regards,", "sincerely,", "signed", "kunde", "kundin", "patientin", "mitarbeiter",
    "mitarbeiterin", "ansprechpartner", "ansprechpartnerin", "ich heiße", "ich bin", "mein name ist",
    "sehr geehrte", "sehr geehrter", "liebe", "lieber", "je m'appelle", "je m’appelle", "mon nom est", "le client",
    "la cliente", "cher", "chère", "me llamo", "mi nombre es", "el cliente", "la cliente", "estimado", "estimada",
    "mi chiamo", "il mio nome è", "il cliente", "gentile", "ik heet", "mijn naam is", "de klant", "geachte",
    "beste", "nazywam się", "klient", "klientka", "szanowny", "szanowna", "jag heter", "kunden", "kund",
    "meu nome é", "chamo-me", "me chamo", "o cliente", "a cliente", "prezado", "prezada",
];

/// Capitalised words that are never a surname after a given name, nor a name after a title.
#[rustfmt::skip]
const STOP: &[&str] = &[
    "The", "A", "An", "And", "Or", "But", "Of", "In", "On", "At", "To", "For", "By", "With", "From", "As", "Is",
    "It", "I", "We", "You", "He", "She", "They", "This", "That", "These", "Those", "If", "So", "Not", "No", "Yes",
    "My", "Our", "Your", "His", "Her", "Their", "Its", "Der", "Die", "Das", "Und", "Oder", "Ein", "Eine", "Le",
    "La", "Les", "Et", "Un", "Une", "Des", "El", "Los", "Las", "Y", "Il", "Lo", "Gli", "E", "De", "Het", "En",
    "Een", "O", "Os", "As", "Och", "Ett", "W", "Z", "I", "Del", "Della", "Delle", "Dei", "Degli", "Di", "Da", "Dos",
    "Do", "Du", "Des", "Inc", "Ltd", "LLC", "GmbH", "AG", "SA", "SL", "SpA", "BV",
    "AB", "Co", "Corp", "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "Januar", "Februar", "März", "Juni", "Juli", "Oktober", "Dezember", "Montag", "Dienstag", "Mittwoch",
    "Donnerstag", "Freitag", "Samstag", "Sonntag", "Street", "Avenue", "Road", "Lane", "Drive", "Boulevard",
    "Square", "Park", "Station", "Airport", "University", "College", "School", "Hospital", "Bank", "Group", "Team",
    "Company", "Foundation", "Institute", "Center", "Centre", "City", "County", "River", "Lake", "Mountain",
    "Island", "Bay", "Beach", "Hotel", "Church", "Cathedral", "Museum", "Hall", "Day", "Week", "Year", "Pro", "Max",
    "Plus", "Mini", "Ultra", "Edition", "Version", "Release", "Update", "Cloud", "Studio", "Office", "Team",
    "Manager", "Director", "Engineer", "Officer", "President", "CEO", "CTO", "CFO", "VP", "Senior", "Junior",
    "Lead", "Head", "Benz", "Air", "Red", "Blue", "North", "South", "East", "West", "New", "Old", "Saint", "San",
    "Santa", "Sankt",
    // greeting and salutation words (a title-case greeting is no name: `Feliz Navidad`, `Cher Client`)
    "Feliz", "Felices", "Felice", "Buon", "Buona", "Buone", "Bonne", "Bon", "Joyeux", "Joyeuses", "Joyeuse",
    "Próspero", "Prospero", "Frohe", "Frohes", "Fröhliche", "Happy", "Merry", "Boas", "Bom", "Boa", "Fijne",
    "Prettige", "Gelukkig", "Trevlig", "Trevliga", "God", "Gott", "Glad", "Glada", "Wesołych", "Szczęśliwego",
    "Hello", "Hi", "Hey", "Hola", "Hallo", "Olá", "Ciao", "Bonjour", "Bonsoir", "Hej", "Cześć", "Welcome",
    "Willkommen", "Bienvenue", "Bienvenido", "Bienvenida", "Benvenuto", "Benvenuti", "Welkom", "Välkommen",
    "Witamy", "Cher", "Chère", "Kära", "Liebe", "Lieber", "Liebes", "Querido", "Querida", "Caro", "Beste",
    "Bästa", "Drogi", "Droga", "Szanowny", "Szanowna", "Estimado", "Estimada", "Prezado", "Prezada", "Gentile",
    "Geachte", "Dear", "Dearest", "Regards", "Thanks", "Danke", "Merci", "Gracias", "Grazie", "Obrigado",
    "Obrigada", "Bedankt", "Tack",
    // place prefixes (`Vila Nova de Gaia`, `Nueva York`)
    "Vila", "Villa", "São", "Nova", "Novo", "Nueva", "Nuevo", "Neue", "Nouvelle", "Nuovo", "Nuova", "Nieuw",
    "Nieuwe", "Nowa", "Nowy",
    // words after an eponym in the name of an institution (`… Lyceum`, `… Stiftung`)
    "Lyceum", "Gymnasium", "Schule", "Liceo", "Lycée", "Colegio", "Escola", "Szkoła", "Skola", "Klinik",
    "Stiftung", "Fundación", "Fondazione", "Fundação", "Fondation", "Stichting", "Fundacja", "Stiftelse",
    "Institut", "Instituto", "Istituto", "Instytut", "Akademie", "Academy", "Universität", "Universidad",
    "Università", "Université", "Universidade", "Uniwersytet", "Universiteit", "Universitet", "Krankenhaus",
    "Ziekenhuis", "Ospedale", "Hôpital", "Szpital", "Sjukhus", "Award", "Prize", "Preis", "Prix", "Premio",
    "Prijs", "Nagroda", "Priset", "Bridge", "Brücke", "Pont", "Puente", "Ponte", "Brug", "Most", "Bron",
    // large cities that are also surnames (`Rome Florence Venice`)
    "London", "Paris", "Berlin", "Madrid", "Rome", "Roma", "Milan", "Milano", "Venice", "Venezia", "Vienna", "Wien",
    "Lisbon", "Lisboa", "Porto", "Amsterdam", "Rotterdam", "Brussels", "Warsaw", "Warszawa", "Krakow", "Stockholm",
    "Munich", "München", "Hamburg", "Frankfurt", "Zurich", "Zürich", "Geneva", "Genève", "Lyon", "Marseille",
    "Barcelona", "Sevilla", "Valencia", "Napoli", "Naples", "Torino", "Turin", "Florence", "Firenze", "Dublin",
    "Boston", "Chicago", "Houston", "Denver", "Phoenix", "Seattle", "Portland", "York", "Washington", "Jersey",
    "Orleans", "Vegas", "Angeles", "Francisco", "Diego", "Texas", "California",
];

/// Nouns that address a group or a role (lower case; ASCII case ignored): after a greeting they
/// are no name (`Dear Customer`, `Beste Klant`, `Szanowny Kliencie`, `Hello Team`).
#[rustfmt::skip]
pub(super) const ADDRESSEES: &[&str] = &[
    "customer", "customers", "client", "clients", "cliente", "clienta", "clientes", "clientela", "kunde", "kundin",
    "kunden", "kund", "klant", "klanten", "klient", "kliencie", "klientka", "klientko", "member", "members",
    "medlem", "medlemmar", "team", "teamet", "equipe", "équipe", "equipo", "squadra", "zespole", "zespół", "damen",
    "herren", "heer", "heren", "mevrouw", "sir", "madam", "user", "users", "utilisateur", "utente", "usuario",
    "usuário", "użytkowniku", "użytkownik", "colleague", "colleagues", "kollege", "kollegen", "kollegin",
    "collègue", "collègues", "collega", "colleghi", "compañero", "compañeros", "collega's", "kollega", "kollegor",
    "friend", "friends", "freunde", "amis", "amici", "amigos", "vrienden", "vänner", "patient", "patientin",
    "paciente", "paziente", "pacjent", "pacjencie", "patiënt", "subscriber", "abonné", "abonnée", "assinante",
    "suscriptor", "abbonato", "abonnee", "prenumerant", "guest", "guests", "gast", "gäste", "gäst", "invité",
    "huésped", "ospite", "hóspede", "gość", "partner", "partners", "signore", "signora", "signori", "señor",
    "señora", "señores", "monsieur", "madame", "messieurs", "mesdames", "senhor", "senhora", "państwo",
    "valued", "all", "everyone", "everybody", "support", "staff", "applicant", "candidate", "bewerber",
    "candidat", "candidato", "kandidaat", "kandydat", "sökande", "reader", "leser", "lecteur", "lector",
    "lettore", "lezer", "czytelniku", "läsare", "owner", "inhaber", "titulaire", "titular", "titolare",
    "houder", "właściciel", "innehavare", "manager", "admin", "administrator", "teilnehmer", "participant",
];

/// Street-type words written before the street name (lower case; ASCII case ignored).
#[rustfmt::skip]
const STREET_BEFORE: &[&str] = &[
    // French
    "rue", "avenue", "av.", "boulevard", "bd", "bd.", "bld", "chemin", "place", "allée", "impasse", "quai", "route",
    "cours", "passage", "square", "voie", "faubourg", "sentier", "ruelle", "esplanade",
    // Spanish
    "calle", "c/", "avenida", "avda.", "avda", "plaza", "pza.", "paseo", "pº", "camino", "carrera", "ronda",
    "rambla", "travesía", "glorieta", "vía", "via", "callejón", "carretera", "urbanización", "vial", "pasaje", "c.",
    "cuesta", "acceso", "cañada", "senda", "bulevar", "costanilla", "plazuela", "ctra.", "camí", "carrer",
    "passeig", "polígono", "prolongación", "alameda", "pasadizo",
    // Italian
    "viale", "piazza", "p.zza", "piazzale", "corso", "largo", "strada", "vicolo", "contrada", "borgo", "lungomare",
    "rotonda", "salita", "v.le", "incrocio", "stretto", "traversa", "vico", "calle", "località", "loc.", "frazione",
    "lungotevere", "circonvallazione", "galleria", "passaggio", "quartiere", "rione", "canale",
    // Portuguese
    "rua", "r.", "av", "travessa", "praça", "praceta", "alameda", "estrada", "beco", "calçada", "ladeira",
    // Polish
    "ul.", "ulica", "ulicy", "al.", "aleja", "alei", "aleje", "plac", "pl.", "os.", "osiedle", "skwer",
];

/// Street-type words written after the street name, alone (`Baker Street`, `Berliner Straße`).
#[rustfmt::skip]
const STREET_AFTER: &[&str] = &[
    // USPS Publication 28, Appendix C1: the common primary suffixes and their abbreviations
    "street", "st", "st.", "avenue", "ave", "ave.", "av", "road", "rd", "rd.", "lane", "ln", "ln.", "drive", "dr",
    "dr.", "boulevard", "blvd", "blvd.", "court", "ct", "ct.", "place", "pl", "pl.", "terrace", "ter", "way", "wy",
    "circle", "cir", "parkway", "pkwy", "highway", "hwy", "square", "sq", "trail", "trl", "alley", "aly", "plaza",
    "plz", "crossing", "xing", "loop", "pike", "path", "point", "pt", "ridge", "rdg", "run", "row", "walk", "view",
    "vw", "heights", "hts", "hill", "hl", "park", "pass", "expressway", "expy", "freeway", "fwy", "turnpike",
    "tpke", "route", "rte", "crescent", "cres", "close", "mews", "gardens", "grove", "green", "glen", "gateway",
    "junction", "jct", "landing", "manor", "meadows", "mill", "mills", "harbor", "haven", "hollow", "knoll",
    "lodge", "mall", "oval", "orchard", "pines", "prairie", "ranch", "shore", "shores", "spring", "springs",
    "station", "sta", "summit", "track", "trace", "tunnel", "valley", "vly", "village", "vlg", "vista", "vis",
    "causeway", "cswy", "cove", "cv", "creek", "crk", "estates", "ests", "falls", "ferry", "field", "fields",
    "forest", "fork", "fort", "ft", "garden", "gdn", "island", "isle", "key", "lake", "lakes", "light", "lock",
    "mount", "mt", "mountain", "mtn", "neck", "overpass", "plain", "plains", "port", "rapids", "rest", "river",
    "skyway", "spur", "stream", "throughway", "underpass", "union", "viaduct", "ville", "well", "wells", "brook",
    "brooks", "branch", "bridge", "burg", "bypass", "camp", "canyon", "cape", "center", "centre", "cliff", "cliffs",
    "club", "common", "corner", "corners", "course", "courts", "dale", "dam", "divide", "extension", "ext", "flat",
    "flats", "ford", "forge", "freeway", "harbour", "inlet", "keys", "motorway", "radial", "ramp", "shoal",
    "stravenue", "trafficway", "parade", "wynd", "approach", "rise", "embankment", "ways", "lights", "locks",
    "meadow", "mdw", "mdws", "crest", "curve", "crossroad", "drives", "fords", "forks", "glens", "greens", "groves",
    "harbors", "havens", "hills", "islands", "junctions", "knolls", "loaf", "manors", "missions", "mounts", "parks",
    "parkways", "passage", "points", "ports", "ridges", "roads", "shoals", "squares", "streams", "streets",
    "tracks", "trails", "trailer", "unions", "valleys", "views", "villages", "vistas", "walks", "wall", "burgs",
    "centers", "circles", "commons", "coves", "extensions", "fall", "gardens", "fords", "mission", "mews", "ramp",
    "lodge",
    // German
    "straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "ring", "damm", "ufer", "chaussee", "steig",
    "pfad", "markt", "berg",
    // Dutch
    "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "dreef", "hof", "pad", "steeg", "baan",
    // Swedish
    "gatan", "vägen", "gränd", "torget", "stigen", "backen", "allén", "gata", "väg", "torg",
];

/// Endings of compound street names (`Hauptstraße`, `Keizersgracht`, `Drottninggatan`).
#[rustfmt::skip]
const STREET_ENDINGS: &[&str] = &[
    "straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "ring", "damm", "ufer", "chaussee", "steig",
    "pfad", "markt", "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "dreef", "hof", "pad", "steeg",
    "baan", "gatan", "vägen", "gränd", "torget", "stigen", "backen", "allén", "gata", "väg", "torg", "boulevard",
    "straatweg", "kanaal", "markt", "dal", "park",
];

/// Secondary unit words (`Apt. 5`, `Suite 100`, `Piso 3`, `Appartamento 12`, `m. 4`).
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "apt", "apt.", "apartment", "suite", "ste", "ste.", "unit", "flat", "floor", "fl", "room", "rm", "#", "piso",
    "puerta", "pta.", "escalera", "esc.", "appartamento", "app.", "piano", "int.", "interno", "scala", "m.", "lok.",
    "bus", "etage", "whg.", "lgh", "bis", "ter", "bte", "hab.",
];

/// Two-letter US state and territory abbreviations (USPS).
#[rustfmt::skip]
pub(super) const STATES: &[&[u8; 2]] = &[
    b"AL", b"AK", b"AZ", b"AR", b"CA", b"CO", b"CT", b"DE", b"DC", b"FL", b"GA", b"HI", b"ID", b"IL", b"IN", b"IA",
    b"KS", b"KY", b"LA", b"ME", b"MD", b"MA", b"MI", b"MN", b"MS", b"MO", b"MT", b"NE", b"NV", b"NH", b"NJ", b"NM",
    b"NY", b"NC", b"ND", b"OH", b"OK", b"OR", b"PA", b"RI", b"SC", b"SD", b"TN", b"TX", b"UT", b"VT", b"VA", b"WA",
    b"WV", b"WI", b"WY", b"AS", b"GU", b"MP", b"PR", b"VI", b"AA", b"AE", b"AP", b"MH", b"FM", b"PW",
];

/// Lower-case words allowed between the capitalised words of a street or city name.
#[rustfmt::skip]
const CONNECTORS: &[&str] = &[
    "de", "del", "della", "delle", "dei", "degli", "di", "da", "do", "dos", "das", "du", "des", "la", "las", "le",
    "les", "los", "l'", "d'", "y", "e", "et", "sur", "sous", "en", "am", "an", "im", "in", "der", "den", "dem",
    "zum", "zur", "bei", "van", "von", "upon", "on", "the", "of", "lès", "aan", "op", "ter", "ten", "i",
];

pub(super) struct Words {
    pub(super) titles: Set<&'static [u8]>,
    pub(super) stop: Set<&'static [u8]>,
    pub(super) before: Set<&'static [u8]>,
    pub(super) after: Set<&'static [u8]>,
    pub(super) units: Set<&'static [u8]>,
    pub(super) connectors: Set<&'static [u8]>,
    /// Bit `k` of `before_shape[c]`: some [`STREET_BEFORE`] word is `k` bytes long and starts with
    /// ASCII letter `c` (a prefilter for the set lookup).
    pub(super) before_shape: [u32; 26],
    /// The same for [`STREET_AFTER`].
    pub(super) after_shape: [u32; 26],
    /// [`STREET_ENDINGS`] by their last byte.
    pub(super) endings: Vec<Vec<&'static [u8]>>,
    /// The last word of each cue phrase (`is` of `my name is`), to test a cue with one lookup.
    pub(super) cue_ends: Set<Vec<u8>>,
    /// Bit [`cue_hash`] of the last four bytes of each word of [`Words::cue_ends`]: the first,
    /// cheapest test at every lower-case word (`is` of `my name is`, `kunde`, `regards,`).
    pub(super) cue_tails: [u64; CUE_BITS / 64],
    /// [`ADDRESSEES`], lower case.
    pub(super) addressees: Set<Vec<u8>>,
    /// [`HEADS`], lower case.
    pub(super) heads: Set<&'static [u8]>,
    /// Bit `k` of `heads_shape[c]`: some [`HEADS`] word is `k` bytes long and starts with ASCII
    /// letter `c` (a prefilter for the set lookup).
    pub(super) heads_shape: [u32; 26],
    /// [`TRADE_AFTER`] and [`TRADE_BEFORE`], lower case.
    pub(super) trade_after: Set<&'static [u8]>,
    pub(super) trade_before: Set<&'static [u8]>,
    /// Bit `k` of `trade_shape[c]`: some [`TRADE_AFTER`] word is `k` bytes long and starts with
    /// ASCII letter `c` (a prefilter for the set lookup).
    pub(super) trade_shape: [u32; 26],
    /// The same for [`TRADE_BEFORE`] (its words starting with a non-ASCII letter are not recorded).
    pub(super) trade_before_shape: [u32; 26],
    /// [`LEGAL`], and its shape ([`shape_of`]).
    pub(super) legal: Set<&'static [u8]>,
    pub(super) legal_shape: [u32; 26],
    /// [`MAKES`].
    pub(super) makes: Set<&'static [u8]>,
    /// Bit `k` of `makes_shape[c]`: some [`MAKES`] entry is `k` bytes long and starts with ASCII
    /// letter `c`, either case (a prefilter for the set lookup).
    pub(super) makes_shape: [u32; 26],
    /// Bit `last` of `addressee_ends[first]`: some ASCII addressee starts with letter `first` and
    /// ends with letter `last` (a prefilter for the set lookup).
    pub(super) addressee_ends: [u32; 26],
}

pub(super) fn words() -> &'static Words {
    static W: OnceLock<Words> = OnceLock::new();
    W.get_or_init(|| {
        let set = |l: &[&'static str]| l.iter().map(|w| w.as_bytes()).collect();
        let cue_ends: Vec<Vec<u8>> = CUES
            .iter()
            .map(|c| {
                let c = c.trim_end_matches(':');
                c.rsplit(' ').next().unwrap_or(c).as_bytes().to_vec()
            })
            .collect();
        Words {
            titles: set(TITLES),
            stop: set(STOP),
            before: set(STREET_BEFORE),
            after: set(STREET_AFTER),
            units: set(UNITS),
            connectors: set(CONNECTORS),
            before_shape: shape_of(STREET_BEFORE),
            after_shape: shape_of(STREET_AFTER),
            endings: (0..=255u8)
                .map(|c| {
                    STREET_ENDINGS
                        .iter()
                        .map(|x| x.as_bytes())
                        .filter(|x| x.last() == Some(&c))
                        .collect()
                })
                .collect(),
            addressees: ADDRESSEES.iter().map(|w| lower(w.as_bytes())).collect(),
            heads: set(HEADS),
            heads_shape: shape_of(HEADS),
            trade_after: set(TRADE_AFTER),
            trade_before: set(TRADE_BEFORE),
            trade_shape: shape_of(TRADE_AFTER),
            trade_before_shape: shape_of(TRADE_BEFORE),
            legal: set(LEGAL),
            legal_shape: shape_of(LEGAL),
            makes: set(MAKES),
            makes_shape: shape_of(MAKES),
            addressee_ends: {
                let mut m = [0u32; 26];
                for w in ADDRESSEES {
                    let b = w.as_bytes();
                    if let (Some(&f), Some(&l)) = (b.first(), b.last()) {
                        if f.is_ascii_lowercase() && l.is_ascii_lowercase() {
                            m[usize::from(f - b'a')] |= 1 << (l - b'a');
                        }
                    }
                }
                m
            },
            cue_tails: {
                let mut m = [0u64; CUE_BITS / 64];
                for b in &cue_ends {
                    let h = cue_hash(b, b.len());
                    m[h / 64] |= 1 << (h % 64);
                }
                m
            },
            cue_ends: cue_ends.into_iter().collect(),
        }
    })
}

/// Bits in [`Words::cue_tails`].
pub(super) const CUE_BITS: usize = 4096;

/// The [`Words::cue_tails`] bit of the word's last four bytes before `e` in `t`: ASCII letters in
/// lower case, `,`, `'`, `-` and bytes beyond ASCII as they are, back to the first other byte (the
/// space before a short word).
#[inline]
pub(super) fn cue_hash(t: &[u8], e: usize) -> usize {
    let at = |k: usize| if e >= k { CUE_BYTE[usize::from(t[e - k])] } else { 0 };
    // each byte counts only while the ones after it are word bytes
    let nz = |c: u8| 0u8.wrapping_sub(u8::from(c != 0));
    let c1 = at(1);
    let c2 = at(2) & nz(c1);
    let c3 = at(3) & nz(c2);
    let c4 = at(4) & nz(c3);
    let key = u32::from_le_bytes([c1, c2, c3, c4]);
    (key.wrapping_mul(0x9E37_79B1) >> 20) as usize % CUE_BITS
}

/// What [`cue_hash`] keeps of a byte: ASCII letters in lower case; `,`, `'`, `-` and bytes beyond
/// ASCII as they are; 0 for the rest.
const CUE_BYTE: [u8; 256] = {
    let mut m = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        m[b] = match c {
            b'A'..=b'Z' => c | 0x20,
            b'a'..=b'z' | b',' | b'\'' | b'-' | 0x80..=0xFF => c,
            _ => 0,
        };
        b += 1;
    }
    m
};

/// Whether the word ending at `e` may end a cue phrase by its last four bytes (no false "no").
#[inline]
pub(super) fn may_end_cue(tails: &[u64; CUE_BITS / 64], t: &[u8], e: usize) -> bool {
    let h = cue_hash(t, e);
    tails[h / 64] & (1 << (h % 64)) != 0
}

/// Whether `w` (in any case, with its dot if it has one) is a street-type word, before the name
/// (`rue`, `ul.`) or after it (`street`, `ave.`): the shapes first, then the sets.
pub(super) fn street_type(w: &[u8]) -> bool {
    let ws = words();
    let (before, after) = (may_be(&ws.before_shape, w), may_be(&ws.after_shape, w));
    if !(before || after) {
        return false;
    }
    let low = Low::new(w);
    (before && low.in_set(&ws.before)) || (after && low.in_set(&ws.after))
}

/// Bit `k` of entry `c`: some word of `list` is `k` bytes long (below 32) and starts with ASCII
/// letter `c` in either case; words starting otherwise are not recorded.
fn shape_of(list: &[&str]) -> [u32; 26] {
    let mut m = [0u32; 26];
    for w in list {
        let b = w.as_bytes();
        if b[0].is_ascii_alphabetic() && b.len() < 32 {
            m[usize::from(b[0].to_ascii_lowercase() - b'a')] |= 1 << b.len();
        }
    }
    m
}

/// Whether `b` may be in a list of shape `m` ([`shape_of`]): its first letter and length (a
/// word starting with a non-ASCII letter always may).
#[inline]
pub(super) fn may_be(m: &[u32; 26], b: &[u8]) -> bool {
    match b.first() {
        // a word starting with a non-ASCII letter goes to the set
        Some(&c) if c >= 0x80 => true,
        Some(&c) if c.is_ascii_alphabetic() && b.len() < 32 => {
            m[usize::from(c.to_ascii_lowercase() - b'a')] & (1 << b.len()) != 0
        }
        _ => false,
    }
}

pub(super) fn ends_street(b: &[u8]) -> bool {
    let Some(&last) = b.last() else { return false };
    let endings = &words().endings[usize::from(last.to_ascii_lowercase())];
    let ends = |w: &[u8]| {
        endings
            .iter()
            .any(|x| w.len() >= x.len() + 2 && w[w.len() - x.len()..].eq_ignore_ascii_case(x))
    };
    // in capitals, an ending with a capital beyond ASCII (`BJÖRKVÄGEN`, `ŚCIEŻKA`) in lower case
    ends(b) || (last.is_ascii_uppercase() && !b.is_ascii() && ends(Low::new(&b[b.len().saturating_sub(24)..]).get()))
}
