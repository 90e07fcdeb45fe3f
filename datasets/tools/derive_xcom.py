#!/usr/bin/env python3
"""Derive nii-atr's compact attenuation table from NIST XCOM element data.

Reads ``elements_mu_rho.csv`` (NIST XCOM, elements Z = 1..100, cm^2/g) and writes, for the
project's materials, the mass attenuation coefficients by the mixture rule (Bragg additivity,
as XCOM itself does for compounds) on XCOM's standard energy grid between 10 keV and 10 MeV,
plus the absorption edges of every constituent element in that range.

Columns written per (material, energy): total with coherent scattering, photoelectric,
incoherent (Compton) and pair production (nuclear + electron field), all cm^2/g. The partial
cross sections let the simulator estimate the energy a detector keeps (mu_tr).

Source: M. J. Berger, J. H. Hubbell, S. M. Seltzer et al., XCOM: Photon Cross Sections
Database, NIST Standard Reference Database 8 (XCOM 3.1).

Usage: python3 datasets/tools/derive_xcom.py [XCOM_DIR] [OUT_DIR]
Only the Python standard library is needed (see requirements.txt beside this script).
"""

import csv
import math
import os
import sys

E_MIN_MEV = 0.010
E_MAX_MEV = 10.0

# Standard atomic weights (IUPAC 2013, abridged) to turn formulas into mass fractions.
ATOMIC_WEIGHT = {
    "H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990, "Mg": 24.305,
    "Al": 26.982, "Si": 28.085, "P": 30.974, "S": 32.06, "Cl": 35.45, "Ar": 39.948,
    "K": 39.098, "Ca": 40.078, "Mn": 54.938, "Fe": 55.845, "Cu": 63.546, "Zn": 65.38,
    "Cd": 112.414, "W": 183.84, "Pb": 207.2,
}


def formula(**atoms):
    """Mass fractions of a stoichiometric formula, e.g. formula(C=6, H=10, O=5)."""
    total = sum(ATOMIC_WEIGHT[el] * n for el, n in atoms.items())
    return {el: ATOMIC_WEIGHT[el] * n / total for el, n in atoms.items()}


def blend(*parts):
    """Mass-weighted blend of compositions: blend((0.7, comp_a), (0.3, comp_b))."""
    out = {}
    for weight, comp in parts:
        for el, w in comp.items():
            out[el] = out.get(el, 0.0) + weight * w
    return out


def norm(comp):
    total = sum(comp.values())
    return {el: w / total for el, w in comp.items()}


WATER = {"H": 0.111894, "O": 0.888106}  # NIST
CELLULOSE = formula(C=6, H=10, O=5)
PET = formula(C=10, H=8, O=4)
POLYSTYRENE = formula(C=8, H=8)
SUCROSE = formula(C=12, H=22, O=11)
HYDROXYAPATITE = formula(Ca=10, P=6, O=26, H=2)
# Collagen, approximate elemental make-up of the protein (mass fractions).
COLLAGEN = norm({"C": 0.48, "H": 0.065, "N": 0.175, "O": 0.28})
SODA_LIME_GLASS = blend(
    (0.73, formula(Si=1, O=2)), (0.14, formula(Na=2, O=1)),
    (0.09, formula(Ca=1, O=1)), (0.04, formula(Mg=1, O=1)),
)

# name, nominal density g/cm^3, description, composition (mass fractions)
MATERIALS = [
    ("air", 0.001205, "dry air near sea level (NIST)",
     {"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827}),
    ("water", 1.0, "liquid water H2O (NIST)", WATER),
    ("polyethylene", 0.94, "polyethylene (C2H4)n", formula(C=2, H=4)),
    ("polystyrene", 1.05, "polystyrene (C8H8)n, stands in for ABS housings", POLYSTYRENE),
    ("pet", 1.38, "polyethylene terephthalate (C10H8O4)n, bottles and polyester", PET),
    ("rubber", 1.15, "natural rubber (C5H8)n with 25 % carbon black (tyres)",
     blend((0.75, formula(C=5, H=8)), (0.25, {"C": 1.0}))),
    ("pmma", 1.19, "polymethyl methacrylate (C5H8O2)n", formula(C=5, H=8, O=2)),
    ("cellulose", 1.50, "cellulose (C6H10O5)n: paper, cardboard, cotton fibre", CELLULOSE),
    ("wood", 0.60, "dry wood, cellulose + lignin (C 49.5 %, H 6.2 %, O 44 %, N 0.3 %)",
     norm({"C": 0.495, "H": 0.062, "O": 0.440, "N": 0.003})),
    ("garments", 1.45, "textiles: 60 % cotton (cellulose) + 40 % polyester (PET)",
     blend((0.6, CELLULOSE), (0.4, PET))),
    ("sugar", 1.59, "sucrose C12H22O11", SUCROSE),
    ("fruit", 1.0, "fresh fruit: 86 % water + 14 % sucrose", blend((0.86, WATER), (0.14, SUCROSE))),
    ("soft_tissue", 1.0, "soft tissue, ICRU four-component (meat)",
     {"H": 0.101172, "C": 0.111, "N": 0.026, "O": 0.761828}),
    ("bone", 1.92, "cortical bone (ICRU)",
     norm({"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435, "Na": 0.001, "Mg": 0.002,
           "P": 0.103, "S": 0.003, "Ca": 0.225})),
    ("cocaine_hcl", 1.20, "cocaine hydrochloride C17H22ClNO4 (pressed brick)",
     formula(C=17, H=22, Cl=1, N=1, O=4)),
    ("heroin", 1.30, "diacetylmorphine C21H23NO5 (pressed brick)", formula(C=21, H=23, N=1, O=5)),
    ("tobacco", 0.25, "cured tobacco leaf with ~12 % ash (K, Ca, Mg, Cl); cigarette cartons",
     norm({"C": 0.41, "H": 0.055, "O": 0.43, "N": 0.025, "K": 0.035, "Ca": 0.03,
           "Cl": 0.01, "Mg": 0.005, "P": 0.003, "S": 0.007})),
    ("ivory", 1.85, "ivory/dentine: 65 % hydroxyapatite, 25 % collagen, 10 % water",
     blend((0.65, HYDROXYAPATITE), (0.25, COLLAGEN), (0.10, WATER))),
    ("glass", 2.50, "soda-lime glass (73 SiO2, 14 Na2O, 9 CaO, 4 MgO)", SODA_LIME_GLASS),
    ("concrete", 2.30, "ordinary concrete (NIST)",
     norm({"H": 0.01, "C": 0.001, "O": 0.529107, "Na": 0.016, "Mg": 0.002, "Al": 0.033872,
           "Si": 0.337021, "K": 0.013, "Ca": 0.044, "Fe": 0.014})),
    ("ceramic", 2.30, "ceramic tile body (68 SiO2, 22 Al2O3, 3 K2O, 2 Na2O, 3 CaO, 2 Fe2O3)",
     blend((0.68, formula(Si=1, O=2)), (0.22, formula(Al=2, O=3)), (0.03, formula(K=2, O=1)),
           (0.02, formula(Na=2, O=1)), (0.03, formula(Ca=1, O=1)), (0.02, formula(Fe=2, O=3)))),
    ("electronics", 1.0, "consumer electronics, bulk: 50 % polystyrene, 20 % glass, 15 % Fe, "
     "10 % Cu, 5 % Al",
     blend((0.5, POLYSTYRENE), (0.2, SODA_LIME_GLASS), (0.15, {"Fe": 1.0}), (0.10, {"Cu": 1.0}),
           (0.05, {"Al": 1.0}))),
    ("aluminium", 2.699, "aluminium Al", {"Al": 1.0}),
    ("iron", 7.874, "iron Fe", {"Fe": 1.0}),
    ("steel", 7.85, "carbon steel (Fe 99 %, Mn 0.8 %, C 0.2 %)",
     {"Fe": 0.99, "Mn": 0.008, "C": 0.002}),
    ("copper", 8.96, "copper Cu", {"Cu": 1.0}),
    ("brass", 8.50, "brass Cu 65 % Zn 35 %", {"Cu": 0.65, "Zn": 0.35}),
    ("tungsten", 19.3, "tungsten W", {"W": 1.0}),
    ("lead", 11.35, "lead Pb", {"Pb": 1.0}),
    ("carbon", 2.0, "graphite C", {"C": 1.0}),
    ("cdwo4", 7.9, "cadmium tungstate CdWO4 scintillator", formula(Cd=1, W=1, O=4)),
]

COMPONENTS = ("total_with_coherent_cm2g", "photoelectric_cm2g", "incoherent_cm2g", "pair")


def load_elements(path):
    """symbol -> list of (energy, {component: value}) in file order (edges kept as pairs)."""
    table = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {
                "total_with_coherent_cm2g": float(row["total_with_coherent_cm2g"]),
                "photoelectric_cm2g": float(row["photoelectric_cm2g"]),
                "incoherent_cm2g": float(row["incoherent_cm2g"]),
                "pair": float(row["pair_nuclear_cm2g"]) + float(row["pair_electron_cm2g"]),
            }
            table.setdefault(row["symbol"], []).append((float(row["energy_MeV"]), values,
                                                        row["edge"]))
    return table


def interp_loglog(e, e0, v0, e1, v1):
    """Log-log between grid points; linear where a side is zero (pair production near its
    threshold), zero below the first non-zero point, as XCOM's README asks."""
    if v0 > 0.0 and v1 > 0.0:
        t = math.log(e / e0) / math.log(e1 / e0)
        return math.exp(math.log(v0) + t * (math.log(v1) - math.log(v0)))
    if v0 == 0.0 and v1 == 0.0:
        return 0.0
    return v0 + (v1 - v0) * (e - e0) / (e1 - e0)


def element_at(points, e):
    for i in range(len(points) - 1):
        e0, v0, _ = points[i]
        e1, v1, _ = points[i + 1]
        if e0 <= e <= e1 and e1 > e0:
            if e == e0:
                return v0
            if e == e1:
                return v1
            return {c: interp_loglog(e, e0, v0[c], e1, v1[c]) for c in COMPONENTS}
    raise ValueError(f"energy {e} MeV outside the XCOM grid")


def material_grid(elements, comp):
    """XCOM's standard grid (from hydrogen, which has no edges) plus every constituent's edge
    pair inside the range, so a mixture keeps its steps sharp."""
    grid = {e for e, _, _ in elements["H"] if E_MIN_MEV <= e <= E_MAX_MEV}
    for el in comp:
        pts = elements[el]
        for i, (e, _, edge) in enumerate(pts):
            if edge and E_MIN_MEV <= e <= E_MAX_MEV:
                grid.add(e)
                grid.add(pts[i - 1][0])
    return sorted(grid)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    xcom_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "..", "..", "..", "shared", "data", "nist-xcom")
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "physics")
    elements = load_elements(os.path.join(xcom_dir, "elements_mu_rho.csv"))

    os.makedirs(out_dir, exist_ok=True)
    header = [
        "# nii-atr material attenuation table, schema_version 1. Derived by",
        "# datasets/tools/derive_xcom.py from NIST XCOM (Berger, Hubbell, Seltzer et al., XCOM:",
        "# Photon Cross Sections Database, NIST Standard Reference Database 8) by the mixture",
        "# rule. Units cm^2/g; energy in MeV; pair = nuclear + electron field.",
    ]
    with open(os.path.join(out_dir, "xcom_materials.csv"), "w", newline="") as f:
        f.write("\n".join(header) + "\n")
        f.write("material,energy_MeV,total_cm2g,photoelectric_cm2g,incoherent_cm2g,pair_cm2g\n")
        for name, _, _, comp in MATERIALS:
            assert abs(sum(comp.values()) - 1.0) < 1e-6, name
            for e in material_grid(elements, comp):
                mix = {c: 0.0 for c in COMPONENTS}
                for el, w in comp.items():
                    v = element_at(elements[el], e)
                    for c in COMPONENTS:
                        mix[c] += w * v[c]
                f.write(f"{name},{e:.6E},{mix['total_with_coherent_cm2g']:.5E},"
                        f"{mix['photoelectric_cm2g']:.5E},{mix['incoherent_cm2g']:.5E},"
                        f"{mix['pair']:.5E}\n")
    with open(os.path.join(out_dir, "materials.csv"), "w", newline="") as f:
        f.write("# nii-atr materials, schema_version 1: nominal density and composition "
                "(mass fractions) behind xcom_materials.csv.\n")
        f.write("material,density_g_cm3,composition,description\n")
        for name, density, desc, comp in MATERIALS:
            comp_s = " ".join(f"{el}:{w:.6f}" for el, w in sorted(comp.items()))
            f.write(f"{name},{density},{comp_s},\"{desc}\"\n")
    print(f"wrote {len(MATERIALS)} materials to {out_dir}")


if __name__ == "__main__":
    main()
