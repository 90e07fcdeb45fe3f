use thiserror::Error;

/// Errors of the physics models: bad tables, unknown materials, out-of-range parameters.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum PhysicsError {
    #[error("attenuation table {table}, line {line}: {reason}")]
    Table { table: String, line: usize, reason: String },
    #[error("unknown material `{0}` (not in the XCOM-derived table)")]
    UnknownMaterial(String),
    #[error("energy {energy_mev} MeV is outside the table's range {min_mev}..{max_mev} MeV")]
    EnergyOutOfRange { energy_mev: f64, min_mev: f64, max_mev: f64 },
    #[error("invalid parameter {name} = {value}: {reason}")]
    Parameter { name: &'static str, value: f64, reason: &'static str },
}
