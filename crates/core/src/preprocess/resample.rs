//! Scans taken at another pixel pitch than a model was trained at are resampled to the
//! model's pitch before tiling, so that an object covers as many input pixels as it did in
//! training (a convolutional model has learnt object sizes in pixels, not millimetres).
//! Findings are mapped back to the scan's own pixels afterwards.
//!
//! It also holds Ultralytics' letterbox ([`Letterbox`]): a whole image scaled into one model
//! input with OpenCV's linear resize ([`resize_linear_u8`], byte for byte), centred on grey.

use super::calibration::AttenuationImage;
use super::materials::MaterialMap;
use super::views::ScanViews;
use image::{ImageBuffer, Pixel, RgbImage};
use ndarray::{Array1, Array2};

/// Relative pitch difference under which a scan is used as it is: resampling by 2 % would
/// blur the image for no gain in object size.
pub const PITCH_TOLERANCE: f32 = 0.02;

/// Most pixels a resampled scan may have (about 1 GiB of planes and views): a 40 ft scan at
/// 5 mm has ~2.5 M; this bound only stops absurd pitch ratios from allocating without end.
pub const MAX_RESAMPLED_PIXELS: usize = 64 << 20;

/// The size `(rows, columns)` a scan of `rows` x `columns` pixels at pitch `along` (columns)
/// and `vertical` (rows) takes at the model's `model_pitch` (mm, both axes); `None` when both
/// pitches are within [`PITCH_TOLERANCE`] of the model's, so the scan runs as it is.
pub fn target_size(
    rows: usize,
    columns: usize,
    along: f32,
    vertical: f32,
    model_pitch: f32,
) -> Result<Option<(usize, usize)>, String> {
    for (name, p) in [("along", along), ("vertical", vertical), ("model", model_pitch)] {
        if !(p.is_finite() && p > 0.0) {
            return Err(format!("{name} pixel pitch {p} mm is not a positive number"));
        }
    }
    let close = |p: f32| ((p - model_pitch) / model_pitch).abs() <= PITCH_TOLERANCE;
    if close(along) && close(vertical) {
        return Ok(None);
    }
    let scaled = |n: usize, p: f32| ((n as f64 * (p / model_pitch) as f64).round().max(1.0)) as usize;
    let (r, c) = (scaled(rows, vertical), scaled(columns, along));
    if r.saturating_mul(c) > MAX_RESAMPLED_PIXELS {
        return Err(format!(
            "resampling {rows} x {columns} px at {along} x {vertical} mm to the model's {model_pitch} mm gives \
             {r} x {c} px, over the {MAX_RESAMPLED_PIXELS} pixel limit"
        ));
    }
    Ok(Some((r, c)))
}

/// Source pixels and weights of each output pixel along one axis of `n_in` -> `n_out`.
/// Shrinking averages the source pixels an output pixel covers, by covered length (a box
/// filter, so a thin dense bar keeps its integrated attenuation); enlarging interpolates
/// linearly between the two nearest source centres.
fn axis_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_out as f64 / n_in as f64;
    (0..n_out)
        .map(|i| {
            if scale < 1.0 {
                let (a, b) = (i as f64 / scale, ((i + 1) as f64 / scale).min(n_in as f64));
                let first = a.floor() as usize;
                let last = (b.ceil() as usize).clamp(first + 1, n_in);
                let w: Vec<f32> = (first..last)
                    .map(|j| ((j + 1) as f64).min(b) - (j as f64).max(a))
                    .map(|len| (len.max(0.0) * scale) as f32)
                    .collect();
                (first, w)
            } else {
                let c = ((i as f64 + 0.5) / scale - 0.5).clamp(0.0, (n_in - 1) as f64);
                let j0 = (c.floor() as usize).min(n_in.saturating_sub(2));
                let t = (c - j0 as f64) as f32;
                if n_in == 1 { (0, vec![1.0]) } else { (j0, vec![1.0 - t, t]) }
            }
        })
        .collect()
}

/// Index of the source pixel holding output pixel `i`'s centre (for classes, which do not mix).
fn nearest(i: usize, n_in: usize, n_out: usize) -> usize {
    (((i as f64 + 0.5) * n_in as f64 / n_out as f64) as usize).min(n_in - 1)
}

fn resample_1d(src: &Array1<f32>, w: &[(usize, Vec<f32>)]) -> Array1<f32> {
    w.iter().map(|(s, k)| k.iter().enumerate().map(|(j, k)| k * src[s + j]).sum()).collect()
}

fn resample_plane(src: &Array2<f32>, rw: &[(usize, Vec<f32>)], cw: &[(usize, Vec<f32>)]) -> Array2<f32> {
    let rows_in = src.nrows();
    let mut across = Array2::<f32>::zeros((rows_in, cw.len()));
    for (y, mut out) in across.outer_iter_mut().enumerate() {
        let row = src.row(y);
        for (o, (s, k)) in out.iter_mut().zip(cw) {
            *o = k.iter().enumerate().map(|(j, k)| k * row[s + j]).sum();
        }
    }
    Array2::from_shape_fn((rw.len(), cw.len()), |(y, x)| {
        let (s, k) = &rw[y];
        k.iter().enumerate().map(|(j, k)| k * across[[s + j, x]]).sum()
    })
}

/// The views at `rows` x `columns`: attenuation and Z_eff resampled (averaged by covered length
/// when shrinking, linear when enlarging), material classes taken from the nearest source
/// pixel, the pseudo-colour view resized with a triangle filter. Per-pixel flags are not carried (no model input reads them).
pub fn resample(v: &ScanViews, rows: usize, columns: usize) -> ScanViews {
    let (rows_in, cols_in) = (v.attenuation.rows(), v.attenuation.columns());
    let (rw, cw) = (axis_weights(rows_in, rows), axis_weights(cols_in, columns));
    let a = &v.attenuation;
    let per_row = |src: &Array1<f32>| if src.len() == rows_in { resample_1d(src, &rw) } else { src.clone() };
    let attenuation = AttenuationImage {
        high: resample_plane(&a.high, &rw, &cw),
        low: a.low.as_ref().map(|l| resample_plane(l, &rw, &cw)),
        flags: Array2::zeros((rows, columns)),
        max_attenuation: a.max_attenuation,
        air_high: per_row(&a.air_high),
        dark_high: per_row(&a.dark_high),
    };
    let class = Array2::from_shape_fn((rows, columns), |(y, x)| {
        v.materials.class[[nearest(y, rows_in, rows), nearest(x, cols_in, columns)]]
    });
    let materials = MaterialMap { class, z_eff: resample_plane(&v.materials.z_eff, &rw, &cw) };
    let pseudo_colour =
        image::imageops::resize(&v.pseudo_colour, columns as u32, rows as u32, image::imageops::FilterType::Triangle);
    ScanViews { attenuation, materials, pseudo_colour }
}

/// Ultralytics' letterbox of an image into a model input (`LetterBox(auto=False,
/// scale_fill=False, scaleup=True, center=True)`, as `YOLO(...).predict` builds it for a static
/// ONNX export, Ultralytics 8.4): one scale for both axes so the image fits, small images scaled
/// up, the rest of the input padded evenly around it (the odd pixel right and bottom).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Letterbox {
    /// Image width, pixels.
    pub src_width: usize,
    /// Image height, pixels.
    pub src_height: usize,
    /// Model input width, pixels.
    pub width: usize,
    /// Model input height, pixels.
    pub height: usize,
    /// `min(height / src_height, width / src_width)`: above 1 for an image smaller than the input.
    pub ratio: f64,
    /// Width of the resized image inside the input: `src_width * ratio` rounded half to even
    /// (Python's `round`), at least 1.
    pub new_width: usize,
    /// Height of the resized image inside the input, rounded as `new_width`.
    pub new_height: usize,
    /// Padding columns left of the image (`(width - new_width) / 2`, rounded down).
    pub left: usize,
    /// Padding rows above the image (`(height - new_height) / 2`, rounded down).
    pub top: usize,
}

impl Letterbox {
    /// The letterbox of a `src_height` x `src_width` image into a `height` x `width` input
    /// (an empty image counts as one pixel, so nothing divides by zero).
    pub fn new(src_height: usize, src_width: usize, height: usize, width: usize) -> Self {
        let (h0, w0) = (src_height.max(1), src_width.max(1));
        // Python floats (f64) and Python's round (half to even): 256x77 into 128 gives 38.5 -> 38.
        let ratio = (height as f64 / h0 as f64).min(width as f64 / w0 as f64);
        let new_width = ((w0 as f64 * ratio).round_ties_even() as usize).clamp(1, width.max(1));
        let new_height = ((h0 as f64 * ratio).round_ties_even() as usize).clamp(1, height.max(1));
        // Ultralytics: left = round(dw / 2 - 0.1), right = round(dw / 2 + 0.1), which for an
        // integer dw is dw // 2 and dw - dw // 2.
        let (left, top) = (width.saturating_sub(new_width) / 2, height.saturating_sub(new_height) / 2);
        Self { src_width: w0, src_height: h0, width, height, ratio, new_width, new_height, left, top }
    }

    /// Padding columns right of the image.
    pub fn right(&self) -> usize {
        self.width.saturating_sub(self.new_width + self.left)
    }

    /// Padding rows below the image.
    pub fn bottom(&self) -> usize {
        self.height.saturating_sub(self.new_height + self.top)
    }

    /// Whether the image is resized at all (Ultralytics copies an image of the resized size as it is).
    pub fn resizes(&self) -> bool {
        (self.new_width, self.new_height) != (self.src_width, self.src_height)
    }

    /// A box `[x1, y1, x2, y2]` in input pixels mapped back to the image's pixels and clipped to
    /// `[0, src_width] x [0, src_height]`: Ultralytics' `scale_boxes` then `clip_boxes`, in f32
    /// as its tensors are, with the per-axis gain of the rounded resized size (`new_width /
    /// src_width`, not `ratio`).
    pub fn to_image(&self, [x1, y1, x2, y2]: [f32; 4]) -> [f32; 4] {
        let gain_x = (self.new_width as f64 / self.src_width as f64) as f32;
        let gain_y = (self.new_height as f64 / self.src_height as f64) as f32;
        let (pad_x, pad_y) = (self.left as f32, self.top as f32);
        let (w, h) = (self.src_width as f32, self.src_height as f32);
        let x = |v: f32| ((v - pad_x) / gain_x).clamp(0.0, w);
        let y = |v: f32| ((v - pad_y) / gain_y).clamp(0.0, h);
        [x(x1), y(y1), x(x2), y(y2)]
    }
}

/// One axis of OpenCV's `INTER_LINEAR` resize: per output pixel, the two source taps and the
/// fraction of the second (`resizeGeneric_`'s coefficient tables).
struct LinearTaps {
    first: Vec<usize>,
    second: Vec<usize>,
    fraction: Vec<f32>,
}

impl LinearTaps {
    /// Taps of `src` -> `dst` pixels with half-pixel centres. Along x OpenCV zeroes the
    /// fraction where the centre falls outside the image (`clamp_fraction`); along y it keeps it
    /// and only clamps the row indices.
    fn new(src: usize, dst: usize, clamp_fraction: bool) -> Self {
        let scale = 1.0 / (dst as f64 / src as f64);
        let last = src as isize - 1;
        let mut taps =
            Self { first: Vec::with_capacity(dst), second: Vec::with_capacity(dst), fraction: Vec::with_capacity(dst) };
        for d in 0..dst {
            let centre = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = centre.floor() as isize;
            let mut f = centre - s as f32;
            if clamp_fraction {
                if s < 0 {
                    (s, f) = (0, 0.0);
                }
                if s >= last {
                    (s, f) = (last, 0.0);
                }
            }
            taps.first.push(s.clamp(0, last) as usize);
            taps.second.push((s + 1).clamp(0, last) as usize);
            taps.fraction.push(f);
        }
        taps
    }

    /// The 11-bit fixed-point weights of each tap (they sum to 2048), rounded half to even
    /// as OpenCV's `saturate_cast<short>` does.
    fn fixed_point(&self) -> Vec<[i32; 2]> {
        let w = |v: f32| (v * 2048.0).round_ties_even() as i32;
        self.fraction.iter().map(|&f| [w(1.0 - f), w(f)]).collect()
    }
}

/// `cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)` of an 8-bit image (grey,
/// RGB, any interleaved layout), byte for byte as OpenCV computes it on x86-64: two-tap
/// bilinear with half-pixel centres, no antialiasing when shrinking, 11-bit fixed-point
/// weights, and the rounding of OpenCV's vectorised vertical pass. An empty image resizes to
/// zeros.
pub fn resize_linear_u8<P>(src: &ImageBuffer<P, Vec<u8>>, width: u32, height: u32) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let channels = P::CHANNEL_COUNT as usize;
    let (src_width, src_height) = (src.width() as usize, src.height() as usize);
    let (w, h) = (width as usize, height as usize);
    if src_width == 0 || src_height == 0 || w == 0 || h == 0 {
        return ImageBuffer::new(width, height);
    }
    let stride = src_width * channels;
    let xw = LinearTaps::new(src_width, w, true);
    let yw = LinearTaps::new(src_height, h, false);
    let (xk, yk) = (xw.fixed_point(), yw.fixed_point());
    // The horizontal pass over each source row once, in i32 (at most 255 x 2048).
    let rows: Vec<Vec<i32>> = src
        .as_raw()
        .chunks_exact(stride)
        .map(|row| {
            let mut out = Vec::with_capacity(w * channels);
            for ((&a, &b), &[wa, wb]) in xw.first.iter().zip(&xw.second).zip(&xk) {
                let (a, b) = (a * channels, b * channels);
                out.extend((0..channels).map(|c| row[a + c] as i32 * wa + row[b + c] as i32 * wb));
            }
            out
        })
        .collect();
    let mut out = Vec::with_capacity(w * channels * h);
    for y in 0..h {
        let (a, b, [wa, wb]) = (&rows[yw.first[y]], &rows[yw.second[y]], yk[y]);
        // OpenCV's VResizeLinearVec_32s8u: each product keeps its high bits before the sum.
        out.extend(
            a.iter()
                .zip(b)
                .map(|(&p, &q)| (((((p >> 4) * wa) >> 16) + (((q >> 4) * wb) >> 16) + 2) >> 2).clamp(0, 255) as u8),
        );
    }
    ImageBuffer::from_raw(width, height, out).unwrap_or_else(|| ImageBuffer::new(width, height))
}

/// `cv2.resize` with `INTER_LINEAR` of an f32 plane: the same taps as [`resize_linear_u8`]
/// with the fractions as f32 weights (OpenCV's floating-point path), for physical channels. An
/// empty plane resizes to zeros.
pub fn resize_linear_f32(src: &Array2<f32>, height: usize, width: usize) -> Array2<f32> {
    let (src_height, src_width) = src.dim();
    if src.is_empty() {
        return Array2::zeros((height, width));
    }
    let xw = LinearTaps::new(src_width, width, true);
    let yw = LinearTaps::new(src_height, height, false);
    let mut across = Array2::<f32>::zeros((src_height, width));
    for (row, mut out) in src.outer_iter().zip(across.outer_iter_mut()) {
        for (x, o) in out.iter_mut().enumerate() {
            let f = xw.fraction[x];
            *o = row[xw.first[x]] * (1.0 - f) + row[xw.second[x]] * f;
        }
    }
    Array2::from_shape_fn((height, width), |(y, x)| {
        let f = yw.fraction[y];
        across[[yw.first[y], x]] * (1.0 - f) + across[[yw.second[y], x]] * f
    })
}

/// An 8-bit RGB image letterboxed into a `height` x `width` model input as Ultralytics feeds
/// it: resized with [`resize_linear_u8`] (unless already at the resized size), then padded with
/// `pad` grey (114 in Ultralytics) in all three channels. Returns the input image and its
/// letterbox, which maps the model's boxes back ([`Letterbox::to_image`]).
pub fn letterbox_rgb(image: &RgbImage, height: usize, width: usize, pad: u8) -> (RgbImage, Letterbox) {
    let lb = Letterbox::new(image.height() as usize, image.width() as usize, height, width);
    let resized;
    let inner = if lb.resizes() {
        resized = resize_linear_u8(image, lb.new_width as u32, lb.new_height as u32);
        &resized
    } else {
        image
    };
    let mut out = RgbImage::from_pixel(width as u32, height as u32, image::Rgb([pad; 3]));
    image::imageops::replace(&mut out, inner, lb.left as i64, lb.top as i64);
    (out, lb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_within_tolerance_run_as_they_are() {
        assert_eq!(target_size(100, 400, 5.05, 4.95, 5.0).unwrap(), None);
        assert_eq!(target_size(100, 400, 10.0, 10.0, 5.0).unwrap(), Some((200, 800)));
        // Pitches differ per axis: each axis gets its own factor.
        assert_eq!(target_size(100, 400, 4.0, 6.0, 5.0).unwrap(), Some((120, 320)));
    }

    #[test]
    fn absurd_pitches_are_refused_before_any_allocation() {
        let e = target_size(2000, 8000, 10.0, 10.0, 0.05).unwrap_err();
        assert!(e.contains("pixel limit"), "{e}");
        assert!(target_size(10, 10, f32::NAN, 5.0, 5.0).unwrap_err().contains("along"));
        assert!(target_size(10, 10, 5.0, 5.0, 0.0).unwrap_err().contains("model"));
    }

    #[test]
    fn shrinking_is_a_box_filter_that_keeps_the_integral() {
        // 3 -> 2: each output pixel covers 1.5 source pixels.
        let w = axis_weights(3, 2);
        assert_eq!(w[0].0, 0);
        assert!((w[0].1[0] - 2.0 / 3.0).abs() < 1e-6 && (w[0].1[1] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(w[1].0, 1);
        assert!((w[1].1[0] - 1.0 / 3.0).abs() < 1e-6 && (w[1].1[1] - 2.0 / 3.0).abs() < 1e-6);
        // A one-pixel bar of attenuation 3 over 7 px at 10 mm keeps its sum times the scale.
        let src = Array1::from(vec![0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
        let out = resample_1d(&src, &axis_weights(7, 3));
        assert!((out.sum() - 3.0 * 3.0 / 7.0).abs() < 1e-5, "{out}");
    }

    #[test]
    fn enlarging_interpolates_between_centres() {
        // 2 -> 4 (10 mm -> 5 mm): centres at -0.25, 0.25, 0.75, 1.25 of the source.
        let out = resample_1d(&Array1::from(vec![1.0, 3.0]), &axis_weights(2, 4));
        assert_eq!(out.to_vec(), vec![1.0, 1.5, 2.5, 3.0]);
        // A constant plane stays constant at any size.
        let plane = Array2::from_elem((5, 7), 2.5f32);
        let r = resample_plane(&plane, &axis_weights(5, 11), &axis_weights(7, 3));
        assert_eq!(r.dim(), (11, 3));
        assert!(r.iter().all(|&v| (v - 2.5).abs() < 1e-6));
        assert_eq!(resample_1d(&Array1::from(vec![4.0]), &axis_weights(1, 3)).to_vec(), vec![4.0; 3]);
    }

    #[test]
    fn letterbox_numbers_are_ultralytics() {
        // (rows, cols) -> resized (width, height), top, bottom, left, right; from the fixture's
        // expected.json (Ultralytics 8.4.190).
        let cases = [
            ((170, 300), (128, 73), [27, 28, 0, 0]),
            ((60, 90), (128, 85), [21, 22, 0, 0]), // scaled up
            ((220, 101), (59, 128), [0, 0, 34, 35]),
            ((77, 256), (128, 38), [45, 45, 0, 0]), // 38.5 rounds half to even
            ((110, 150), (128, 94), [17, 17, 0, 0]),
            ((128, 128), (128, 128), [0, 0, 0, 0]),
        ];
        for ((rows, cols), (w, h), pads) in cases {
            let lb = Letterbox::new(rows, cols, 128, 128);
            assert_eq!((lb.new_width, lb.new_height), (w, h), "{rows}x{cols}");
            assert_eq!([lb.top, lb.bottom(), lb.left, lb.right()], pads, "{rows}x{cols}");
            assert_eq!(lb.resizes(), (rows, cols) != (h, w));
        }
        assert_eq!(Letterbox::new(170, 300, 128, 128).ratio, 128.0 / 300.0);
        // A rectangular input: the smaller ratio wins, each axis padded on its own.
        let lb = Letterbox::new(100, 100, 64, 128);
        assert_eq!((lb.new_width, lb.new_height, lb.left, lb.top), (64, 64, 32, 0));
        // Nothing panics on degenerate sizes.
        let lb = Letterbox::new(0, 5000, 128, 128);
        assert_eq!((lb.new_width, lb.new_height), (128, 1));
    }

    #[test]
    fn boxes_map_back_with_the_per_axis_gain_and_are_clipped() {
        // 300x170 -> 128x73 at top 27: x scales by 128/300 = ratio, y by 73/170 (not ratio).
        let lb = Letterbox::new(170, 300, 128, 128);
        let [x1, y1, x2, y2] = lb.to_image([12.8, 27.0 + 7.3, 64.0, 27.0 + 36.5]);
        assert!((x1 - 30.0).abs() < 1e-4 && (x2 - 150.0).abs() < 1e-4, "{x1} {x2}");
        assert!((y1 - 17.0).abs() < 1e-4 && (y2 - 85.0).abs() < 1e-4, "{y1} {y2}");
        // Padding maps outside the image and is clipped to [0, width] x [0, height].
        assert_eq!(lb.to_image([-4.0, 0.0, 200.0, 127.0]), [0.0, 0.0, 300.0, 170.0]);
    }

    fn image_of(width: u32, height: u32, px: impl Fn(u32, u32) -> u8) -> image::GrayImage {
        image::GrayImage::from_fn(width, height, |x, y| image::Luma([px(x, y)]))
    }

    #[test]
    fn linear_resize_is_opencvs_fixed_point() {
        // [0, 255] -> 4: centres at -0.25 (clamped to the edge), 0.25, 0.75, 1.25 (edge);
        // 255 x 512 / 2048 = 63.75 -> 64 and 191.25 -> 191 through OpenCV's shifts.
        let row = resize_linear_u8(&image_of(2, 1, |x, _| [0, 255][x as usize]), 4, 1);
        assert_eq!(row.as_raw(), &[0, 64, 191, 255]);
        // The same size is the identity; the weights are exact.
        let src = image_of(7, 5, |x, y| (x * 37 + y * 11) as u8);
        assert_eq!(resize_linear_u8(&src, 7, 5), src);
        // Shrinking samples, it does not average the area: 6 -> 2 reads pixels 1 and 4 alone
        // (an area average would give 30, 30).
        let row = resize_linear_u8(&image_of(6, 1, |x, _| [0, 90, 0, 0, 90, 0][x as usize]), 2, 1);
        assert_eq!(row.as_raw(), &[90, 90]);
        // Empty images give zeros, never a panic.
        assert_eq!(resize_linear_u8(&image_of(0, 3, |_, _| 1), 2, 2).as_raw(), &[0; 4]);
        assert_eq!(resize_linear_f32(&Array2::zeros((0, 4)), 2, 3), Array2::<f32>::zeros((2, 3)));
    }

    #[test]
    fn letterboxed_images_are_centred_on_grey() {
        let src = image::RgbImage::from_pixel(40, 20, image::Rgb([10, 20, 30]));
        let (out, lb) = letterbox_rgb(&src, 32, 32, 114);
        assert_eq!((lb.new_width, lb.new_height, lb.top, lb.bottom()), (32, 16, 8, 8));
        assert_eq!(out.get_pixel(5, 7).0, [114; 3]);
        assert_eq!(out.get_pixel(5, 8).0, [10, 20, 30]);
        assert_eq!(out.get_pixel(31, 23).0, [10, 20, 30]);
        assert_eq!(out.get_pixel(31, 24).0, [114; 3]);
    }

    proptest::proptest! {
        #[test]
        fn linear_resize_keeps_flat_images_flat_and_follows_the_float_bilinear(
            sw in 1u32..40, sh in 1u32..40, dw in 1u32..60, dh in 1u32..60, v in 0u8..=255, seed in 0u32..1000,
        ) {
            let flat = resize_linear_u8(&image_of(sw, sh, |_, _| v), dw, dh);
            proptest::prop_assert!(flat.pixels().all(|p| p.0[0] == v));
            // Within one grey level of the same taps in floating point, rounded.
            let src = image_of(sw, sh, |x, y| ((x * 97 + y * 31 + seed) % 256) as u8);
            let fixed = resize_linear_u8(&src, dw, dh);
            let float = resize_linear_f32(&Array2::from_shape_fn((sh as usize, sw as usize), |(y, x)| src.get_pixel(x as u32, y as u32).0[0] as f32), dh as usize, dw as usize);
            for (p, f) in fixed.pixels().zip(float.iter()) {
                proptest::prop_assert!((p.0[0] as f32 - f).abs() <= 1.0 + 1e-3, "{} vs {}", p.0[0], f);
            }
        }
    }
}
