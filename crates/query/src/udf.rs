//! Functions Athena's CloudTrail queries use that DataFusion lacks: `json_extract_scalar`,
//! `json_extract` (over the JSON-text columns `requestparameters`, `responseelements`, ...),
//! `from_iso8601_timestamp`, and `resources_contain(resources, 'arn'|'type'|'accountid', v)`
//! for "any element of the resources array has this value" (what `lookup` uses).

use crate::jsonpath;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, StringArray, StringBuilder, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(JsonExtract {
        name: "json_extract_scalar",
        scalar: true,
        signature: Signature::string(2, Volatility::Immutable),
    }));
    ctx.register_udf(ScalarUDF::from(JsonExtract {
        name: "json_extract",
        scalar: false,
        signature: Signature::string(2, Volatility::Immutable),
    }));
    ctx.register_udf(ScalarUDF::from(ResourcesContain {
        signature: Signature::any(3, Volatility::Immutable),
    }));
    // Athena's name for parsing eventtime; DataFusion's to_timestamp reads RFC 3339.
    let to_ts = datafusion::functions::datetime::to_timestamp(ctx.state().config_options());
    ctx.register_udf(
        to_ts
            .as_ref()
            .clone()
            .with_aliases(["from_iso8601_timestamp"]),
    );
}

/// Arguments as Utf8 arrays of the batch's length (scalars broadcast).
fn utf8_args(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|a| {
            let arr = a.to_array(args.number_rows)?;
            Ok(cast(&arr, &DataType::Utf8)?)
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonExtract {
    name: &'static str,
    scalar: bool,
    signature: Signature,
}

impl ScalarUDFImpl for JsonExtract {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = utf8_args(&args)?;
        let (Some(json), Some(path)) = (arrays.first(), arrays.get(1)) else {
            return exec_err!("{} takes (json, path)", self.name);
        };
        let json = json.as_string::<i32>();
        let path = path.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(json.len(), 0);
        // The path is nearly always a literal: parse it once per distinct value.
        let mut cached: Option<(String, Vec<jsonpath::Step>)> = None;
        for i in 0..json.len() {
            if json.is_null(i) || path.is_null(i) {
                out.append_null();
                continue;
            }
            let p = path.value(i);
            if cached.as_ref().is_none_or(|(s, _)| s != p) {
                let steps =
                    jsonpath::parse(p).map_err(datafusion::error::DataFusionError::Execution)?;
                cached = Some((p.to_owned(), steps));
            }
            let steps = cached.as_ref().map(|(_, s)| s.as_slice()).unwrap_or(&[]);
            let v = if self.scalar {
                jsonpath::extract_scalar(json.value(i), steps)
            } else {
                jsonpath::extract(json.value(i), steps)
            };
            out.append_option(v);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ResourcesContain {
    signature: Signature,
}

impl ScalarUDFImpl for ResourcesContain {
    fn name(&self) -> &str {
        "resources_contain"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let field = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(f)))) => f.to_ascii_lowercase(),
            _ => {
                return exec_err!(
                    "resources_contain(resources, field, value): field must be a string literal"
                )
            }
        };
        let value = match args.args.get(2) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(v)))) => v.clone(),
            _ => {
                return exec_err!(
                    "resources_contain(resources, field, value): value must be a string literal"
                )
            }
        };
        let Some(list) = args.args.first() else {
            return exec_err!("resources_contain takes (resources, field, value)");
        };
        let list = list.to_array(n)?;
        let Some(list) = list.as_list_opt::<i32>() else {
            return exec_err!(
                "resources_contain: first argument is {}, not a list",
                list.data_type()
            );
        };
        let mut out = BooleanBuilder::with_capacity(n);
        for i in 0..list.len() {
            if list.is_null(i) {
                out.append_value(false);
                continue;
            }
            let items = list.value(i);
            let hit = items
                .as_any()
                .downcast_ref::<StructArray>()
                .and_then(|s| s.column_by_name(&field))
                .and_then(|c| cast(c, &DataType::Utf8).ok())
                .is_some_and(|c| {
                    let c = c.as_any().downcast_ref::<StringArray>().cloned();
                    c.is_some_and(|c| (0..c.len()).any(|j| c.is_valid(j) && c.value(j) == value))
                });
            out.append_value(hit);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
