//! The archive's columns: Athena's CloudTrail table (`CREATE EXTERNAL TABLE cloudtrail_logs`
//! in the AWS docs), column names lower-cased as Athena has them, so Athena-style SQL runs
//! unchanged; plus two of our own: `eventtimestamp` (eventTime as a timestamp) and
//! `cloudtrailevent` (the record's original bytes, so the archive is lossless and `lookup` can
//! return the event exactly as CloudTrail wrote it).
//!
//! Free-form objects whose shape varies per API (`requestParameters`, `responseElements`,
//! `additionalEventData`, `serviceEventDetails`, ...) are JSON text: inferring a schema from
//! them breaks on the next event type.

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use std::sync::Arc;

/// How one JSON member becomes one column.
#[derive(Debug)]
pub enum Kind {
    /// A string (a non-string scalar keeps its JSON text, e.g. `true`).
    Text,
    /// JSON text of an object or array (a string member gives its content).
    Json,
    Struct(&'static [Spec]),
    /// An array of objects.
    List(&'static [Spec]),
}

/// A column: its lower-cased name matches the JSON member name case-insensitively.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
}

const fn t(name: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Text,
    }
}
const fn j(name: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Json,
    }
}
const fn s(name: &'static str, fields: &'static [Spec]) -> Spec {
    Spec {
        name,
        kind: Kind::Struct(fields),
    }
}
const fn l(name: &'static str, fields: &'static [Spec]) -> Spec {
    Spec {
        name,
        kind: Kind::List(fields),
    }
}

const ATTRIBUTES: &[Spec] = &[t("mfaauthenticated"), t("creationdate")];
const SESSION_ISSUER: &[Spec] = &[
    t("type"),
    t("principalid"),
    t("arn"),
    t("accountid"),
    t("username"),
];
const SESSION_CONTEXT: &[Spec] = &[
    s("attributes", ATTRIBUTES),
    s("sessionissuer", SESSION_ISSUER),
    t("ec2roledelivery"),
    t("sourceidentity"),
    j("webidfederationdata"),
];
const USER_IDENTITY: &[Spec] = &[
    t("type"),
    t("principalid"),
    t("arn"),
    t("accountid"),
    t("invokedby"),
    t("accesskeyid"),
    t("username"),
    t("credentialid"),
    s("sessioncontext", SESSION_CONTEXT),
];
const RESOURCE: &[Spec] = &[t("arn"), t("accountid"), t("type")];
const TLS_DETAILS: &[Spec] = &[
    t("tlsversion"),
    t("ciphersuite"),
    t("clientprovidedhostheader"),
];

/// The columns taken from the record's members, in table order.
pub const RECORD: &[Spec] = &[
    t("eventversion"),
    s("useridentity", USER_IDENTITY),
    t("eventtime"),
    t("eventsource"),
    t("eventname"),
    t("awsregion"),
    t("sourceipaddress"),
    t("useragent"),
    t("errorcode"),
    t("errormessage"),
    j("requestparameters"),
    j("responseelements"),
    j("additionaleventdata"),
    t("requestid"),
    t("eventid"),
    l("resources", RESOURCE),
    t("eventtype"),
    t("apiversion"),
    t("readonly"),
    t("recipientaccountid"),
    j("serviceeventdetails"),
    t("sharedeventid"),
    t("vpcendpointid"),
    t("vpcendpointaccountid"),
    t("eventcategory"),
    t("managementevent"),
    s("tlsdetails", TLS_DETAILS),
    t("sessioncredentialfromconsole"),
    j("insightdetails"),
    j("edgedevicedetails"),
];

/// `eventTime` parsed, for range predicates without string parsing.
pub const EVENT_TIMESTAMP: &str = "eventtimestamp";
/// The original record bytes.
pub const RAW_EVENT: &str = "cloudtrailevent";

/// Hive-style partition directories: `account=…/region=…/dt=yyyy-mm-dd/`. `dt` rather than
/// `date` because `date '…'` is a typed literal in SQL.
pub const PARTITION_COLUMNS: [&str; 3] = ["account", "region", "dt"];

pub fn data_type(spec: &Spec) -> DataType {
    match spec.kind {
        Kind::Text | Kind::Json => DataType::Utf8,
        Kind::Struct(fields) => DataType::Struct(fields_of(fields)),
        Kind::List(fields) => DataType::List(Arc::new(list_item(fields))),
    }
}

pub fn list_item(fields: &'static [Spec]) -> Field {
    Field::new("item", DataType::Struct(fields_of(fields)), true)
}

pub fn fields_of(specs: &'static [Spec]) -> Fields {
    specs
        .iter()
        .map(|s| Field::new(s.name, data_type(s), true))
        .collect()
}

/// The schema of every archive file (partition columns live in the path, not the file).
pub fn file_schema() -> Arc<Schema> {
    let mut fields: Vec<Field> = RECORD
        .iter()
        .map(|s| Field::new(s.name, data_type(s), true))
        .collect();
    fields.push(Field::new(
        EVENT_TIMESTAMP,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        true,
    ));
    fields.push(Field::new(RAW_EVENT, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_and_unique() {
        let schema = file_schema();
        let mut seen = std::collections::BTreeSet::new();
        for f in schema.fields() {
            assert_eq!(f.name(), &f.name().to_ascii_lowercase());
            assert!(seen.insert(f.name().clone()), "duplicate {}", f.name());
            assert!(!PARTITION_COLUMNS.contains(&f.name().as_str()));
        }
        assert_eq!(schema.fields().len(), RECORD.len() + 2);
    }

    #[test]
    fn athena_columns_present_with_types() {
        let schema = file_schema();
        for name in [
            "eventversion",
            "eventtime",
            "eventsource",
            "eventname",
            "awsregion",
            "sourceipaddress",
            "useragent",
            "errorcode",
            "errormessage",
            "requestparameters",
            "responseelements",
            "additionaleventdata",
            "requestid",
            "eventid",
            "eventtype",
            "apiversion",
            "readonly",
            "recipientaccountid",
            "serviceeventdetails",
            "sharedeventid",
            "vpcendpointid",
        ] {
            let f = schema.field_with_name(name).expect(name);
            assert_eq!(f.data_type(), &DataType::Utf8, "{name}");
        }
        let ui = schema
            .field_with_name("useridentity")
            .expect("useridentity");
        let DataType::Struct(children) = ui.data_type() else {
            panic!("useridentity is {:?}", ui.data_type())
        };
        assert!(children.find("username").is_some());
        assert!(children.find("sessioncontext").is_some());
        assert!(matches!(
            schema
                .field_with_name("resources")
                .map(|f| f.data_type().clone()),
            Ok(DataType::List(_))
        ));
    }
}
