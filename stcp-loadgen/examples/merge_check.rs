//! Checks a merged report against its parts without `stcp-loadgen merge`'s code: the JSON is
//! read as plain values (serde_json), every part's latency histogram is decoded with hdrhistogram
//! directly and added into one, and then
//!
//! - the merged requests and bytes must equal the sums of the parts',
//! - the merged histogram must hold exactly the counts of that one histogram,
//! - the merged percentiles (p50 ... p99.9, min, max, count) must be that histogram's,
//! - each wall-clock second of the merged series must hold the sum of the parts' same second,
//! - the merged sources must name every part's file.
//!
//! Used by scripts/netns-cluster.sh. Usage: merge_check MERGED.json PART.json...
//! Exit status 0 when everything matches, 1 on any mismatch (each one printed), 2 on bad input.

use std::collections::BTreeMap;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;

struct Bad(String);

fn read(path: &str) -> Result<Value, Bad> {
    let text = std::fs::read_to_string(path).map_err(|e| Bad(format!("{path}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Bad(format!("{path}: {e}")))
}

fn field<'a>(v: &'a Value, path: &[&str], file: &str) -> Result<&'a Value, Bad> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .ok_or_else(|| Bad(format!("{file}: no {}", path.join("."))))
}

fn u64_at(v: &Value, path: &[&str], file: &str) -> Result<u64, Bad> {
    field(v, path, file)?
        .as_u64()
        .ok_or_else(|| Bad(format!("{file}: {} is not a count", path.join("."))))
}

fn histogram(text: &Value, file: &str) -> Result<Histogram<u64>, Bad> {
    let text = text
        .as_str()
        .ok_or_else(|| Bad(format!("{file}: a histogram is not a string")))?;
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| Bad(format!("{file}: histogram base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| Bad(format!("{file}: histogram: {e:?}")))
}

/// Count at every distinct recorded value.
fn counts(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Requests per wall-clock second of a report's series.
fn seconds(v: &Value, file: &str) -> Result<BTreeMap<u64, u64>, Bad> {
    let first = u64_at(v, &["start", "series_start_unix_s"], file)?;
    let series = field(v, &["series"], file)?
        .as_array()
        .ok_or_else(|| Bad(format!("{file}: series is not a list")))?;
    let mut out = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        out.insert(first + i as u64, u64_at(s, &["requests"], file)?);
    }
    Ok(out)
}

fn check(merged_file: &str, part_files: &[String]) -> Result<Vec<String>, Bad> {
    let merged = read(merged_file)?;
    let parts = part_files
        .iter()
        .map(|f| read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut wrong = Vec::new();
    let mut expect = |what: &str, merged: String, parts: String| {
        if merged != parts {
            wrong.push(format!("{what}: merged {merged}, parts {parts}"));
        }
    };

    for key in ["requests", "bytes_sent", "bytes_received"] {
        let mut sum = 0;
        for (p, f) in parts.iter().zip(part_files) {
            sum += u64_at(p, &["results", key], f)?;
        }
        expect(
            &format!("results.{key}"),
            u64_at(&merged, &["results", key], merged_file)?.to_string(),
            sum.to_string(),
        );
    }

    let mut all: Option<Histogram<u64>> = None;
    for (p, f) in parts.iter().zip(part_files) {
        let h = histogram(field(p, &["histograms", "latency"], f)?, f)?;
        match all.as_mut() {
            None => all = Some(h),
            Some(all) => all
                .add(&h)
                .map_err(|e| Bad(format!("{f}: cannot add its histogram: {e:?}")))?,
        }
    }
    let all = all.ok_or_else(|| Bad("no parts".into()))?;
    let merged_h = histogram(
        field(&merged, &["histograms", "latency"], merged_file)?,
        merged_file,
    )?;
    expect(
        "latency histogram counts",
        format!("{} values", counts(&merged_h).len()),
        format!("{} values", counts(&all).len()),
    );
    if counts(&merged_h) != counts(&all) {
        expect("latency histogram", "differs".into(), "the sum".into());
    }
    let latency = field(&merged, &["results", "latency"], merged_file)?;
    let us = |ns: u64| ns as f64 / 1e3;
    let from_all = [
        ("count", all.len() as f64),
        ("min_us", us(all.min())),
        ("p50_us", us(all.value_at_quantile(0.50))),
        ("p90_us", us(all.value_at_quantile(0.90))),
        ("p95_us", us(all.value_at_quantile(0.95))),
        ("p99_us", us(all.value_at_quantile(0.99))),
        ("p99_9_us", us(all.value_at_quantile(0.999))),
        ("max_us", us(all.max())),
    ];
    for (key, want) in from_all {
        let got = latency
            .get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| Bad(format!("{merged_file}: no results.latency.{key}")))?;
        expect(
            &format!("results.latency.{key}"),
            got.to_string(),
            want.to_string(),
        );
    }

    let mut summed: BTreeMap<u64, u64> = BTreeMap::new();
    for (p, f) in parts.iter().zip(part_files) {
        for (second, n) in seconds(p, f)? {
            *summed.entry(second).or_default() += n;
        }
    }
    let merged_seconds = seconds(&merged, merged_file)?;
    expect(
        "requests per wall-clock second",
        format!("{merged_seconds:?}"),
        format!("{summed:?}"),
    );

    let sources: Vec<String> = field(&merged, &["sources"], merged_file)?
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s.get("file").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for f in part_files {
        if !sources.iter().any(|s| s == f) {
            wrong.push(format!("sources: {f} is not listed ({sources:?})"));
        }
    }
    println!(
        "merge_check: {} parts, {} requests, p99 {} us from one histogram of every sample, {} \
         seconds of series",
        parts.len(),
        all.len(),
        us(all.value_at_quantile(0.99)),
        summed.len()
    );
    Ok(wrong)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: merge_check MERGED.json PART.json...");
        return ExitCode::from(2);
    }
    match check(&args[0], &args[1..]) {
        Ok(wrong) if wrong.is_empty() => {
            println!("merge_check: the merged report is the sum of its parts");
            ExitCode::SUCCESS
        }
        Ok(wrong) => {
            for w in wrong {
                eprintln!("merge_check: MISMATCH {w}");
            }
            ExitCode::from(1)
        }
        Err(Bad(why)) => {
            eprintln!("merge_check: {why}");
            ExitCode::from(2)
        }
    }
}
