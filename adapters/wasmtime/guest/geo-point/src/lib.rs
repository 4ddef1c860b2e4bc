//! Example codec plugin `geo.point`: a labelled point on the globe.
//!
//! * Input form: UTF-8 text `lat,lon[,label]`, e.g. `52.52,13.405,Berlin Mitte`.
//! * Stored form: latitude f64 LE, longitude f64 LE, then the label as UTF-8 (at most 1 KiB).
//! * `validate`: 16 bytes or more, finite coordinates in range, a UTF-8 label.
//! * `to_text`: the label (so a full-text index finds the place by its name) and the coordinates.
//! * `to_json`: `{"lat":..,"lon":..,"label":".."}`.

use statemesh_plugin_sdk::{Codec, export_codec, json_string};

/// The `geo.point` codec.
pub struct GeoPoint;

const MAX_LABEL: usize = 1024;

struct Point<'a> {
    lat: f64,
    lon: f64,
    label: &'a str,
}

fn parse(data: &[u8]) -> Result<Point<'_>, String> {
    if data.len() < 16 {
        return Err(format!("a point is at least 16 bytes, got {}", data.len()));
    }
    let (lat, rest) = data.split_at(8);
    let (lon, label) = rest.split_at(8);
    let lat = f64::from_le_bytes(lat.try_into().map_err(|_| "latitude")?);
    let lon = f64::from_le_bytes(lon.try_into().map_err(|_| "longitude")?);
    check(lat, lon)?;
    if label.len() > MAX_LABEL {
        return Err(format!(
            "label is {} bytes; the limit is {MAX_LABEL}",
            label.len()
        ));
    }
    let label = std::str::from_utf8(label).map_err(|_| "label is not UTF-8".to_string())?;
    Ok(Point { lat, lon, label })
}

fn check(lat: f64, lon: f64) -> Result<(), String> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!("latitude {lat} is outside -90..=90"));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is outside -180..=180"));
    }
    Ok(())
}

impl Codec for GeoPoint {
    const NAME: &'static str = "geo.point";
    const VERSION: &'static str = "1.0.0";

    fn validate(data: &[u8]) -> Result<(), String> {
        parse(data).map(|_| ())
    }

    fn encode(input: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(input).map_err(|_| "input is not UTF-8".to_string())?;
        let mut parts = text.splitn(3, ',');
        let mut number = |what: &str| -> Result<f64, String> {
            let part = parts.next().ok_or(format!("missing {what}"))?.trim();
            part.parse::<f64>()
                .map_err(|_| format!("{what} {part:?} is not a number"))
        };
        let lat = number("latitude")?;
        let lon = number("longitude")?;
        check(lat, lon)?;
        let label = parts.next().unwrap_or("").trim();
        if label.len() > MAX_LABEL {
            return Err(format!(
                "label is {} bytes; the limit is {MAX_LABEL}",
                label.len()
            ));
        }
        let mut out = Vec::with_capacity(16 + label.len());
        out.extend_from_slice(&lat.to_le_bytes());
        out.extend_from_slice(&lon.to_le_bytes());
        out.extend_from_slice(label.as_bytes());
        Ok(out)
    }

    fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
        let p = parse(data)?;
        let mut text = format!("{},{}", p.lat, p.lon);
        if !p.label.is_empty() {
            text.push(',');
            text.push_str(p.label);
        }
        Ok(text.into_bytes())
    }

    fn to_text(data: &[u8]) -> Result<Option<String>, String> {
        let p = parse(data)?;
        Ok(Some(
            format!("{} {} {}", p.label, p.lat, p.lon)
                .trim()
                .to_string(),
        ))
    }

    fn to_json(data: &[u8]) -> Result<Option<String>, String> {
        let p = parse(data)?;
        Ok(Some(format!(
            "{{\"lat\":{},\"lon\":{},\"label\":{}}}",
            p.lat,
            p.lon,
            json_string(p.label)
        )))
    }
}

export_codec!(GeoPoint);
