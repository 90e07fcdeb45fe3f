use thiserror::Error;

/// Errors of the physics models: bad tables, unknown materials, out-of-range parameters.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum PhysicsError {
    /// A line of an attenuation table's CSV files cannot be read.
    #[error("attenuation table {table}, line {line}: {reason}")]
    Table {
        /// The CSV file (`xcom_materials.csv` or `materials.csv`).
        table: String,
        /// Line number in it, from 1.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A material name the table does not hold.
    #[error("unknown material `{0}` (not in the XCOM-derived table)")]
    UnknownMaterial(String),
    /// A photon energy outside the table's energy grid.
    #[error("energy {energy_mev} MeV is outside the table's range {min_mev}..{max_mev} MeV")]
    EnergyOutOfRange {
        /// The energy asked for, MeV.
        energy_mev: f64,
        /// Lowest energy of the table, MeV.
        min_mev: f64,
        /// Highest energy of the table, MeV.
        max_mev: f64,
    },
    /// A model parameter (thickness, energy, bin count) outside its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    Parameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// Why the value is refused (usually the range it must be in).
        reason: &'static str,
    },
}
