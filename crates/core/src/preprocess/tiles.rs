//! Tiles: the slicing grid over a scan and model-input tensors built from a channel recipe.
//!
//! The grid is SAHI's (`sahi.slicing.get_slice_bboxes`): tiles step by `size - overlap`
//! with the overlap truncated to whole pixels, and the last tile of a row or column is shifted
//! back inside the image instead of being padded. Only a scan smaller than a tile is padded,
//! with the value air has in each channel.
//!
//! The other input mode is Ultralytics' letterbox ([`InputSource::fill_letterbox`]): the whole
//! image scaled into one input and centred on grey.

use image::RgbImage;
use ndarray::{Array2, ArrayViewMut3, ArrayViewMut4, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::calibration::AttenuationImage;
use super::materials::MaterialMap;
use super::resample::{Letterbox, letterbox_rgb, resize_linear_f32};

/// Slicing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TileGrid {
    /// Tile width in pixels (columns).
    pub tile_width: usize,
    /// Tile height in pixels (rows).
    pub tile_height: usize,
    /// Overlap between neighbouring tiles as a fraction of the tile width, in [0, 1).
    pub overlap_width_ratio: f32,
    /// Overlap between neighbouring tiles as a fraction of the tile height, in [0, 1).
    pub overlap_height_ratio: f32,
}

impl Default for TileGrid {
    fn default() -> Self {
        Self { tile_width: 640, tile_height: 640, overlap_width_ratio: 0.2, overlap_height_ratio: 0.2 }
    }
}

/// A tile's place in the scan, in pixels; `width`/`height` are smaller than the grid's tile
/// size only when the scan itself is smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileRect {
    /// First column.
    pub x: usize,
    /// First row.
    pub y: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// Why tiles could not be planned or cut.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// The tiling parameters or the image size make no grid.
    #[error("invalid tiling: {reason}")]
    Grid {
        /// Which parameter is wrong.
        reason: String,
    },
    /// A channel of the recipe needs data the scan lacks (a low plane, a material map).
    #[error("channel recipe asks for {channel:?}, which this scan does not have: {reason}")]
    MissingChannel {
        /// The channel asked for.
        channel: Channel,
        /// What it needs.
        reason: String,
    },
    /// The output tensor's shape does not match the tiles and recipe.
    #[error("tensor shape {got:?} does not fit {tiles} tiles of {channels} x {height} x {width}")]
    Shape {
        /// The tensor's shape.
        got: Vec<usize>,
        /// Tiles to cut.
        tiles: usize,
        /// Channels per tile.
        channels: usize,
        /// Tile height, pixels.
        height: usize,
        /// Tile width, pixels.
        width: usize,
    },
}

impl TileGrid {
    /// Checks that tiles have a size and the overlaps are in [0, 1).
    pub fn validate(&self) -> Result<(), TileError> {
        let bad = |reason: String| TileError::Grid { reason };
        if self.tile_width == 0 || self.tile_height == 0 {
            return Err(bad(format!("tile size {}x{} must be positive", self.tile_width, self.tile_height)));
        }
        for r in [self.overlap_width_ratio, self.overlap_height_ratio] {
            if !(0.0..1.0).contains(&r) {
                return Err(bad(format!("overlap ratio {r} must be in [0, 1)")));
            }
        }
        Ok(())
    }

    /// The tiles covering a `rows` x `cols` image, row by row, exactly as SAHI slices.
    pub fn tiles(&self, rows: usize, cols: usize) -> Result<Vec<TileRect>, TileError> {
        self.validate()?;
        if rows == 0 || cols == 0 {
            return Err(TileError::Grid { reason: format!("image of {rows}x{cols} has no pixels") });
        }
        let (sw, sh) = (self.tile_width, self.tile_height);
        // SAHI: int(ratio * size), i.e. truncation.
        let x_overlap = (self.overlap_width_ratio * sw as f32) as usize;
        let y_overlap = (self.overlap_height_ratio * sh as f32) as usize;
        let mut out = Vec::new();
        let (mut y_min, mut y_max) = (0usize, 0usize);
        while y_max < rows {
            let (mut x_min, mut x_max) = (0usize, 0usize);
            y_max = y_min + sh;
            while x_max < cols {
                x_max = x_min + sw;
                if y_max > rows || x_max > cols {
                    let xmax = cols.min(x_max);
                    let ymax = rows.min(y_max);
                    let xmin = xmax.saturating_sub(sw);
                    let ymin = ymax.saturating_sub(sh);
                    out.push(TileRect { x: xmin, y: ymin, width: xmax - xmin, height: ymax - ymin });
                } else {
                    out.push(TileRect { x: x_min, y: y_min, width: sw, height: sh });
                }
                x_min = x_max - x_overlap;
            }
            y_min = y_max - y_overlap;
        }
        Ok(out)
    }
}

/// One input channel of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// High-energy attenuation `-ln T_high`.
    AttenuationHigh,
    /// Low-energy attenuation `-ln T_low`.
    AttenuationLow,
    /// `A_low / A_high`, 0 where `A_high` is below the air threshold (R is noise there).
    RValue,
    /// High-energy transmission `T_high` in [0, 1]: the grey picture (white = air).
    Grey,
    /// Effective Z from the material map (0 where undecided).
    ZEff,
    /// Red of the material pseudo-colour view, in [0, 1].
    PseudoRed,
    /// Green of the pseudo-colour view, in [0, 1].
    PseudoGreen,
    /// Blue of the pseudo-colour view, in [0, 1].
    PseudoBlue,
    /// Red of a rendered 8-bit image as decoded, pixel / 255 (what RGB-trained detectors such
    /// as Ultralytics' are fed); only rendered images have it.
    Red,
    /// Green of a rendered 8-bit image, pixel / 255.
    Green,
    /// Blue of a rendered 8-bit image, pixel / 255.
    Blue,
}

impl Channel {
    /// The raw value of this channel where the beam sees only air: the padding value.
    fn air_value(self) -> f32 {
        match self {
            Channel::AttenuationHigh | Channel::AttenuationLow | Channel::RValue | Channel::ZEff => 0.0,
            Channel::Grey
            | Channel::PseudoRed
            | Channel::PseudoGreen
            | Channel::PseudoBlue
            | Channel::Red
            | Channel::Green
            | Channel::Blue => 1.0,
        }
    }

    /// Which 8-bit picture the channel reads and its index in a pixel: the rendered image's
    /// colour planes or the pseudo-colour view; `None` for physical channels.
    fn picture(self) -> Option<(Picture, usize)> {
        match self {
            Channel::Red => Some((Picture::Rendered, 0)),
            Channel::Green => Some((Picture::Rendered, 1)),
            Channel::Blue => Some((Picture::Rendered, 2)),
            Channel::PseudoRed => Some((Picture::PseudoColour, 0)),
            Channel::PseudoGreen => Some((Picture::PseudoColour, 1)),
            Channel::PseudoBlue => Some((Picture::PseudoColour, 2)),
            _ => None,
        }
    }
}

/// The two 8-bit pictures channels can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picture {
    Rendered,
    PseudoColour,
}

/// A channel with its normalisation `(x - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    /// What the channel holds.
    pub channel: Channel,
    /// Subtracted from the raw value (default 0).
    #[serde(default)]
    pub mean: f32,
    /// The difference is divided by this (default 1).
    #[serde(default = "one")]
    pub std: f32,
}

fn one() -> f32 {
    1.0
}

/// The channels a model takes, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecipe {
    /// The channels, in the order of the model's input.
    pub channels: Vec<ChannelSpec>,
}

impl ChannelRecipe {
    /// Whether any channel reads the colour planes of a rendered image (`red`, `green`, `blue`).
    pub fn needs_rgb(&self) -> bool {
        self.channels.iter().any(|c| matches!(c.channel, Channel::Red | Channel::Green | Channel::Blue))
    }

    /// `[red, green, blue]` of a rendered image, pixel / 255: how Ultralytics feeds its models.
    pub fn rgb() -> Self {
        Self {
            channels: [Channel::Red, Channel::Green, Channel::Blue]
                .map(|channel| ChannelSpec { channel, mean: 0.0, std: 1.0 })
                .to_vec(),
        }
    }

    /// The channels, in order, without their normalisation.
    pub fn channel_list(&self) -> Vec<Channel> {
        self.channels.iter().map(|c| c.channel).collect()
    }

    /// Whether any channel reads the material map or the pseudo-colour view.
    pub fn needs_material_views(&self) -> bool {
        self.channels.iter().any(|c| {
            matches!(c.channel, Channel::ZEff | Channel::PseudoRed | Channel::PseudoGreen | Channel::PseudoBlue)
        })
    }

    /// `[A_high, A_low, R]`, the dual-energy recipe of the project's models; attenuation scaled
    /// so a 6 MV beam's useful range (0..~8) lands near unit variance.
    pub fn dual_energy() -> Self {
        Self {
            channels: vec![
                ChannelSpec { channel: Channel::AttenuationHigh, mean: 0.0, std: 4.0 },
                ChannelSpec { channel: Channel::AttenuationLow, mean: 0.0, std: 4.0 },
                ChannelSpec { channel: Channel::RValue, mean: 0.0, std: 1.0 },
            ],
        }
    }

    /// One grey channel (transmission), for single-energy or rendered scans.
    pub fn grey() -> Self {
        Self { channels: vec![ChannelSpec { channel: Channel::Grey, mean: 0.0, std: 1.0 }] }
    }

    /// Pseudo-colour RGB in [0, 1], as models trained on rendered images expect.
    pub fn pseudo_rgb() -> Self {
        Self {
            channels: [Channel::PseudoRed, Channel::PseudoGreen, Channel::PseudoBlue]
                .map(|channel| ChannelSpec { channel, mean: 0.0, std: 1.0 })
                .to_vec(),
        }
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether the recipe has no channel.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// What tiles are cut from.
#[derive(Clone, Copy)]
pub struct TileSource<'a> {
    /// The calibrated planes.
    pub attenuation: &'a AttenuationImage,
    /// The material map, for the `ZEff` channel.
    pub materials: Option<&'a MaterialMap>,
    /// The pseudo-colour view, for the `Pseudo*` channels.
    pub pseudo_colour: Option<&'a image::RgbImage>,
    /// Below this high-energy attenuation R is set to 0 (see [`Channel::RValue`]).
    pub r_min_attenuation: f32,
}

impl<'a> TileSource<'a> {
    /// Tiles of attenuation alone: no material map or pseudo-colour view, R cut below 0.05.
    pub fn new(attenuation: &'a AttenuationImage) -> Self {
        Self { attenuation, materials: None, pseudo_colour: None, r_min_attenuation: 0.05 }
    }

    /// Checks that every channel of `recipe` can be made from this source (a recipe with
    /// `red`/`green`/`blue` cannot: those need an [`InputSource`] with a rendered image).
    pub fn check(&self, recipe: &ChannelRecipe) -> Result<(), TileError> {
        InputSource::from(*self).check(recipe)
    }

    /// Fills an NCHW batch, one tile per batch entry, in parallel. `out` has shape
    /// `(tiles.len(), recipe.len(), tile_height, tile_width)`.
    pub fn fill_batch(
        &self,
        tiles: &[TileRect],
        recipe: &ChannelRecipe,
        out: ArrayViewMut4<f32>,
    ) -> Result<(), TileError> {
        InputSource::from(*self).fill_batch(tiles, recipe, out)
    }
}

/// Everything model inputs are cut from: the scan's planes and views, and the colour planes
/// of a rendered 8-bit image for the `red`, `green` and `blue` channels.
#[derive(Clone, Copy)]
pub struct InputSource<'a> {
    /// The calibrated planes, the material map and the pseudo-colour view.
    pub planes: TileSource<'a>,
    /// The red, green and blue planes of a rendered image (`Scan::rgb`), the planes' size.
    pub rgb: Option<&'a RgbImage>,
}

impl<'a> From<TileSource<'a>> for InputSource<'a> {
    fn from(planes: TileSource<'a>) -> Self {
        Self { planes, rgb: None }
    }
}

impl InputSource<'_> {
    /// Rows of the source, pixels.
    fn rows(&self) -> usize {
        self.planes.attenuation.rows()
    }

    /// Columns of the source, pixels.
    fn cols(&self) -> usize {
        self.planes.attenuation.columns()
    }

    /// Checks that every channel of `recipe` can be made from this source.
    pub fn check(&self, recipe: &ChannelRecipe) -> Result<(), TileError> {
        let (rows, cols) = (self.rows(), self.cols());
        for spec in &recipe.channels {
            let missing = |reason: String| Err(TileError::MissingChannel { channel: spec.channel, reason });
            let src = &self.planes;
            match spec.channel {
                Channel::AttenuationLow | Channel::RValue if src.attenuation.low.is_none() => {
                    return missing("single-energy scan".into());
                }
                Channel::ZEff if src.materials.is_none() => return missing("no material map".into()),
                Channel::PseudoRed | Channel::PseudoGreen | Channel::PseudoBlue if src.pseudo_colour.is_none() => {
                    return missing("no pseudo-colour view".into());
                }
                Channel::Red | Channel::Green | Channel::Blue => match self.rgb {
                    None => {
                        return missing(
                            "the scan is not a rendered 8-bit image; raw scans have no red/green/blue planes \
                             (feed pseudo_red/pseudo_green/pseudo_blue instead)"
                                .into(),
                        );
                    }
                    Some(img) if (img.height() as usize, img.width() as usize) != (rows, cols) => {
                        return missing(format!(
                            "the colour planes are {} x {} px but the scan's planes {cols} x {rows}",
                            img.width(),
                            img.height()
                        ));
                    }
                    Some(_) => {}
                },
                _ => {}
            }
            if !(spec.std.is_finite() && spec.std != 0.0 && spec.mean.is_finite()) {
                return Err(TileError::MissingChannel {
                    channel: spec.channel,
                    reason: format!("normalisation mean {} std {} is not usable", spec.mean, spec.std),
                });
            }
        }
        Ok(())
    }

    /// The 8-bit picture a channel reads.
    fn picture(&self, picture: Picture) -> &RgbImage {
        match picture {
            Picture::Rendered => self.rgb.expect("checked"),
            Picture::PseudoColour => self.planes.pseudo_colour.expect("checked"),
        }
    }

    /// Fills one tile `(channels, height, width)`; pixels outside the scan get the air value.
    fn fill_tile(&self, rect: TileRect, recipe: &ChannelRecipe, mut out: ArrayViewMut3<f32>) {
        let src = &self.planes;
        let att = src.attenuation;
        let cols = att.columns();
        let (th, tw) = (out.shape()[1], out.shape()[2]);
        for (spec, mut plane) in recipe.channels.iter().zip(out.axis_iter_mut(Axis(0))) {
            let inv_std = 1.0 / spec.std;
            let pad = (spec.channel.air_value() - spec.mean) * inv_std;
            let plane = plane.as_slice_mut().expect("standard layout");
            for ty in 0..th {
                let dst = &mut plane[ty * tw..(ty + 1) * tw];
                if ty >= rect.height {
                    dst.fill(pad);
                    continue;
                }
                let r = rect.y + ty;
                let (x0, w) = (rect.x, rect.width);
                let row = r * cols + x0;
                let (dst, rest) = dst.split_at_mut(w);
                rest.fill(pad);
                let norm = |v: f32| (v - spec.mean) * inv_std;
                fn slice(a: &ndarray::Array2<f32>, row: usize, w: usize) -> &[f32] {
                    &a.as_slice().expect("standard layout")[row..row + w]
                }
                if let Some((picture, k)) = spec.channel.picture() {
                    let img = self.picture(picture).as_raw();
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = norm(img[(row + i) * 3 + k] as f32 / 255.0);
                    }
                    continue;
                }
                match spec.channel {
                    Channel::AttenuationHigh => {
                        dst.iter_mut().zip(slice(&att.high, row, w)).for_each(|(d, &v)| *d = norm(v))
                    }
                    Channel::AttenuationLow => {
                        let low = att.low.as_ref().expect("checked");
                        dst.iter_mut().zip(slice(low, row, w)).for_each(|(d, &v)| *d = norm(v))
                    }
                    Channel::RValue => {
                        let low = slice(att.low.as_ref().expect("checked"), row, w);
                        let thr = src.r_min_attenuation;
                        for ((d, &h), &l) in dst.iter_mut().zip(slice(&att.high, row, w)).zip(low) {
                            *d = norm(if h > thr { l / h } else { 0.0 });
                        }
                    }
                    Channel::Grey => {
                        dst.iter_mut().zip(slice(&att.high, row, w)).for_each(|(d, &v)| *d = norm((-v).exp().min(1.0)))
                    }
                    Channel::ZEff => {
                        let z = &src.materials.expect("checked").z_eff;
                        dst.iter_mut().zip(slice(z, row, w)).for_each(|(d, &v)| *d = norm(v))
                    }
                    _ => unreachable!("picture channels are filled above"),
                }
            }
        }
    }

    /// Fills an NCHW batch, one tile per batch entry, in parallel. `out` has shape
    /// `(tiles.len(), recipe.len(), tile_height, tile_width)`.
    pub fn fill_batch(
        &self,
        tiles: &[TileRect],
        recipe: &ChannelRecipe,
        mut out: ArrayViewMut4<f32>,
    ) -> Result<(), TileError> {
        self.check(recipe)?;
        let s = out.shape().to_vec();
        let (th, tw) = (s[2], s[3]);
        if s[0] != tiles.len() || s[1] != recipe.len() || tiles.iter().any(|t| t.height > th || t.width > tw) {
            return Err(TileError::Shape { got: s, tiles: tiles.len(), channels: recipe.len(), height: th, width: tw });
        }
        let (rows, cols) = (self.rows(), self.cols());
        if let Some(t) = tiles.iter().find(|t| t.x + t.width > cols || t.y + t.height > rows) {
            return Err(TileError::Grid { reason: format!("tile {t:?} lies outside the {rows}x{cols} scan") });
        }
        out.axis_iter_mut(Axis(0)).into_par_iter().zip(tiles.par_iter()).for_each(|(tile, rect)| {
            self.fill_tile(*rect, recipe, tile);
        });
        Ok(())
    }

    /// The physical channel `channel`'s raw values over the whole source (R cut as in tiles).
    fn physical_plane(&self, channel: Channel) -> Array2<f32> {
        let att = self.planes.attenuation;
        match channel {
            Channel::AttenuationHigh => att.high.clone(),
            Channel::AttenuationLow => att.low.clone().expect("checked"),
            Channel::RValue => {
                let thr = self.planes.r_min_attenuation;
                let low = att.low.as_ref().expect("checked");
                ndarray::Zip::from(&att.high).and(low).map_collect(|&h, &l| if h > thr { l / h } else { 0.0 })
            }
            Channel::Grey => att.high.mapv(|v| (-v).exp().min(1.0)),
            Channel::ZEff => self.planes.materials.expect("checked").z_eff.clone(),
            _ => unreachable!("picture channels are letterboxed as images"),
        }
    }

    /// Fills one model input `(channels, height, width)` with the whole source letterboxed as
    /// Ultralytics does ([`Letterbox`]): 8-bit picture channels (`red`, `green`, `blue`,
    /// `pseudo_*`) from the picture resized with OpenCV's fixed-point linear resize and padded
    /// with `pad_value` grey, then / 255; physical channels resized in floating point and padded
    /// with air. Returns the letterbox, which maps the model's boxes back to the source.
    pub fn fill_letterbox(
        &self,
        recipe: &ChannelRecipe,
        pad_value: u8,
        mut out: ArrayViewMut3<f32>,
    ) -> Result<Letterbox, TileError> {
        self.check(recipe)?;
        let s = out.shape().to_vec();
        let (height, width) = (s[1], s[2]);
        if s[0] != recipe.len() || height == 0 || width == 0 {
            return Err(TileError::Shape { got: s, tiles: 1, channels: recipe.len(), height, width });
        }
        let lb = Letterbox::new(self.rows(), self.cols(), height, width);
        let mut boxed: [Option<RgbImage>; 2] = [None, None];
        for (spec, mut plane) in recipe.channels.iter().zip(out.axis_iter_mut(Axis(0))) {
            let inv_std = 1.0 / spec.std;
            let norm = |v: f32| (v - spec.mean) * inv_std;
            if let Some((picture, k)) = spec.channel.picture() {
                let slot = &mut boxed[picture as usize];
                let img = slot.get_or_insert_with(|| letterbox_rgb(self.picture(picture), height, width, pad_value).0);
                for (d, px) in plane.iter_mut().zip(img.pixels()) {
                    *d = norm(px.0[k] as f32 / 255.0);
                }
                continue;
            }
            let full = self.physical_plane(spec.channel);
            let inner = if lb.resizes() { resize_linear_f32(&full, lb.new_height, lb.new_width) } else { full };
            plane.fill(norm(spec.channel.air_value()));
            plane
                .slice_mut(ndarray::s![lb.top..lb.top + lb.new_height, lb.left..lb.left + lb.new_width])
                .zip_mut_with(&inner, |d, &v| *d = norm(v));
        }
        Ok(lb)
    }
}

/// Whether at least `need` pixels of `rect` are not air. Counting stops at `need`, so a tile
/// with cargo is decided after a few rows and only all-air tiles are read in full.
/// Inspection and the training-tile export skip exactly the same tiles with it.
pub fn has_content(att: &ndarray::Array2<f32>, rect: &TileRect, air_attenuation: f32, need: usize) -> bool {
    if need == 0 {
        return true;
    }
    let cols = att.ncols();
    let Some(plane) = att.as_slice() else {
        let tile = att.slice(ndarray::s![rect.y..rect.y + rect.height, rect.x..rect.x + rect.width]);
        return tile.iter().filter(|&&a| a > air_attenuation).count() >= need;
    };
    let mut seen = 0;
    for y in rect.y..rect.y + rect.height {
        let row = &plane[y * cols + rect.x..y * cols + rect.x + rect.width];
        seen += row.iter().filter(|&&a| a > air_attenuation).count();
        if seen >= need {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_test_counts_non_air_pixels_up_to_the_need() {
        let mut att = Array2::<f32>::zeros((8, 10));
        att[[2, 3]] = 1.0;
        att[[5, 7]] = 1.0;
        let all = TileRect { x: 0, y: 0, width: 10, height: 8 };
        assert!(has_content(&att, &all, 0.05, 2));
        assert!(!has_content(&att, &all, 0.05, 3));
        assert!(has_content(&att, &all, 0.05, 0));
        let left = TileRect { x: 0, y: 0, width: 5, height: 8 };
        assert!(has_content(&att, &left, 0.05, 1) && !has_content(&att, &left, 0.05, 2));
        // Exactly at the air threshold is air.
        assert!(!has_content(
            &Array2::from_elem((4, 4), 0.05f32),
            &TileRect { x: 0, y: 0, width: 4, height: 4 },
            0.05,
            1
        ));
        // Other memory orders take the slow path to the same answer.
        let mut fortran = Array2::<f32>::zeros(ndarray::ShapeBuilder::f((8, 10)));
        fortran.assign(&att);
        assert!(!fortran.is_standard_layout());
        assert!(has_content(&fortran, &all, 0.05, 2) && !has_content(&fortran, &all, 0.05, 3));
    }

    use super::*;
    use ndarray::{Array2, Array4};
    use proptest::prelude::*;

    /// SAHI's get_slice_bboxes, transcribed line by line (xyxy), as the naive reference.
    fn sahi_reference(h: usize, w: usize, sh: usize, sw: usize, ohr: f32, owr: f32) -> Vec<[usize; 4]> {
        let mut out = vec![];
        let y_overlap = (ohr * sh as f32) as usize;
        let x_overlap = (owr * sw as f32) as usize;
        let (mut y_min, mut y_max) = (0, 0);
        while y_max < h {
            let (mut x_min, mut x_max) = (0, 0);
            y_max = y_min + sh;
            while x_max < w {
                x_max = x_min + sw;
                if y_max > h || x_max > w {
                    let xmax = w.min(x_max);
                    let ymax = h.min(y_max);
                    let xmin = xmax.saturating_sub(sw);
                    let ymin = ymax.saturating_sub(sh);
                    out.push([xmin, ymin, xmax, ymax]);
                } else {
                    out.push([x_min, y_min, x_max, y_max]);
                }
                x_min = x_max - x_overlap;
            }
            y_min = y_max - y_overlap;
        }
        out
    }

    #[test]
    fn pinned_sahi_grid() {
        // sahi 0.12.8 get_slice_bboxes(1000, 1500, 512, 512, overlap 0.2, 0.2) gives x starts
        // 0, 410, 820, 988 and y starts 0, 410, 488; for a 300x200 image, one [0, 0, 200, 300].
        let g = TileGrid { tile_width: 512, tile_height: 512, overlap_width_ratio: 0.2, overlap_height_ratio: 0.2 };
        let t = g.tiles(1000, 1500).unwrap();
        let xs: Vec<usize> = t.iter().filter(|r| r.y == 0).map(|r| r.x).collect();
        let ys: Vec<usize> = t.iter().filter(|r| r.x == 0).map(|r| r.y).collect();
        assert_eq!(xs, vec![0, 410, 820, 988]);
        assert_eq!(ys, vec![0, 410, 488]);
        assert!(t.iter().all(|r| r.width == 512 && r.height == 512));
        assert_eq!(g.tiles(300, 200).unwrap(), vec![TileRect { x: 0, y: 0, width: 200, height: 300 }]);
    }

    proptest! {
        #[test]
        fn grid_matches_sahi_covers_every_pixel_and_stays_inside(
            h in 1usize..700, w in 1usize..900, sh in 16usize..300, sw in 16usize..300,
            ohr in 0.0f32..0.9, owr in 0.0f32..0.9,
        ) {
            let g = TileGrid { tile_width: sw, tile_height: sh, overlap_width_ratio: owr, overlap_height_ratio: ohr };
            let tiles = g.tiles(h, w).unwrap();
            let reference = sahi_reference(h, w, sh, sw, ohr, owr);
            let ours: Vec<[usize; 4]> = tiles.iter().map(|t| [t.x, t.y, t.x + t.width, t.y + t.height]).collect();
            prop_assert_eq!(&ours, &reference);
            let mut covered = Array2::<u8>::zeros((h, w));
            for t in &tiles {
                prop_assert!(t.x + t.width <= w && t.y + t.height <= h);
                prop_assert_eq!(t.width, sw.min(w));
                prop_assert_eq!(t.height, sh.min(h));
                covered.slice_mut(ndarray::s![t.y..t.y + t.height, t.x..t.x + t.width]).fill(1);
            }
            prop_assert!(covered.iter().all(|&c| c == 1));
        }
    }

    fn att(rows: usize, cols: usize) -> AttenuationImage {
        let high = Array2::from_shape_fn((rows, cols), |(r, c)| (r * 100 + c) as f32 * 0.001);
        let low = high.mapv(|v| v * 1.2);
        AttenuationImage {
            flags: Array2::zeros((rows, cols)),
            low: Some(low),
            max_attenuation: 11.5,
            air_high: ndarray::Array1::zeros(rows),
            dark_high: ndarray::Array1::zeros(rows),
            high,
        }
    }

    #[test]
    fn batch_tensors_hold_the_normalised_pixels_and_air_padding() {
        let a = att(20, 30);
        let src = TileSource::new(&a);
        let recipe = ChannelRecipe::dual_energy();
        let tiles = [TileRect { x: 5, y: 3, width: 8, height: 8 }, TileRect { x: 0, y: 12, width: 30, height: 8 }];
        let mut out = Array4::<f32>::zeros((2, 3, 8, 32));
        src.fill_batch(&tiles, &recipe, out.view_mut()).unwrap();
        // Tile 0, channel A_high, pixel (2, 4) is scan pixel (5, 9).
        assert!((out[[0, 0, 2, 4]] - a.high[[5, 9]] / 4.0).abs() < 1e-7);
        assert!((out[[0, 1, 2, 4]] - a.low.as_ref().unwrap()[[5, 9]] / 4.0).abs() < 1e-7);
        assert!((out[[0, 2, 2, 4]] - 1.2).abs() < 1e-5);
        // Tile 0 is 8 wide in a 32-wide tensor: padded with air (0 attenuation).
        assert_eq!(out[[0, 0, 2, 20]], 0.0);
        assert!((out[[1, 0, 7, 29]] - a.high[[19, 29]] / 4.0).abs() < 1e-7);
    }

    #[test]
    fn missing_channels_and_bad_shapes_are_errors() {
        let mut a = att(10, 10);
        a.low = None;
        let src = TileSource::new(&a);
        let t = [TileRect { x: 0, y: 0, width: 10, height: 10 }];
        let mut out = Array4::<f32>::zeros((1, 3, 10, 10));
        assert!(matches!(
            src.fill_batch(&t, &ChannelRecipe::dual_energy(), out.view_mut()),
            Err(TileError::MissingChannel { .. })
        ));
        let mut out = Array4::<f32>::zeros((1, 1, 4, 4));
        assert!(matches!(src.fill_batch(&t, &ChannelRecipe::grey(), out.view_mut()), Err(TileError::Shape { .. })));
        let bad = TileGrid { overlap_width_ratio: 1.0, ..Default::default() };
        assert!(bad.tiles(10, 10).is_err());
    }

    #[test]
    fn colour_channels_read_the_rendered_image_over_255() {
        let a = att(10, 12);
        let rgb = RgbImage::from_fn(12, 10, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, 255]));
        let src = InputSource { planes: TileSource::new(&a), rgb: Some(&rgb) };
        let mut out = Array4::<f32>::zeros((1, 3, 8, 8));
        src.fill_batch(&[TileRect { x: 2, y: 1, width: 8, height: 8 }], &ChannelRecipe::rgb(), out.view_mut()).unwrap();
        // Tile pixel (3, 4) is image pixel x 6, y 4.
        assert_eq!([out[[0, 0, 3, 4]], out[[0, 1, 3, 4]], out[[0, 2, 3, 4]]], [120.0 / 255.0, 80.0 / 255.0, 1.0]);
        // Without a rendered image, or with one of another size, the recipe is refused.
        let plain = InputSource::from(TileSource::new(&a));
        let err = plain.check(&ChannelRecipe::rgb()).unwrap_err();
        assert!(matches!(err, TileError::MissingChannel { channel: Channel::Red, .. }), "{err}");
        assert!(err.to_string().contains("not a rendered 8-bit image"), "{err}");
        let small = RgbImage::new(4, 4);
        let wrong = InputSource { planes: TileSource::new(&a), rgb: Some(&small) };
        assert!(wrong.check(&ChannelRecipe::rgb()).unwrap_err().to_string().contains("4 x 4"));
    }

    #[test]
    fn letterboxed_inputs_centre_every_channel_and_pad_by_kind() {
        // 10 rows x 20 columns into 16 x 16: resized to 16 x 8, rows 4..12, padding 4 above.
        let a = att(10, 20);
        let rgb = RgbImage::from_pixel(20, 10, image::Rgb([51, 102, 204]));
        let src = InputSource { planes: TileSource::new(&a), rgb: Some(&rgb) };
        let recipe = ChannelRecipe {
            channels: vec![
                ChannelSpec { channel: Channel::Red, mean: 0.0, std: 1.0 },
                ChannelSpec { channel: Channel::AttenuationHigh, mean: 0.0, std: 2.0 },
            ],
        };
        let mut out = ndarray::Array3::<f32>::zeros((2, 16, 16));
        let lb = src.fill_letterbox(&recipe, 114, out.view_mut()).unwrap();
        assert_eq!((lb.new_width, lb.new_height, lb.top, lb.left), (16, 8, 4, 0));
        // 8-bit channels: the grey pad / 255 around the picture / 255.
        assert_eq!((out[[0, 3, 5]], out[[0, 4, 5]], out[[0, 12, 5]]), (114.0 / 255.0, 0.2, 114.0 / 255.0));
        // Physical channels: air (0 attenuation) around the resized, normalised plane.
        assert_eq!((out[[1, 3, 5]], out[[1, 12, 5]]), (0.0, 0.0));
        let inner = resize_linear_f32(&a.high, 8, 16);
        assert_eq!(out[[1, 4 + 3, 9]], inner[[3, 9]] / 2.0);
        // The input's shape must hold the recipe.
        let mut wrong = ndarray::Array3::<f32>::zeros((3, 16, 16));
        assert!(matches!(src.fill_letterbox(&recipe, 114, wrong.view_mut()), Err(TileError::Shape { .. })));
    }
}
