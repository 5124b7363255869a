// sRGB <-> CIELAB (D65) exactly as OpenCV's float cvtColor computes them (COLOR_BGR2Lab,
// COLOR_Lab2BGR with 0..1 input), so GPU and CPU lipstick agree to a fraction of a level.

const vec3 D65 = vec3(0.950456, 1.0, 1.088754);
const float LAB_T = 0.008856;        // (6/29)^3, OpenCV's rounding
const float LAB_K = 903.3;           // (29/3)^3, OpenCV's rounding
const float LAB_F_THRESH = 7.787 * 0.008856 + 16.0 / 116.0;

float srgb_to_linear(float c) {
    return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

float linear_to_srgb(float c) {
    return c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1.0 / 2.4) - 0.055;
}

float lab_f(float t) {
    return t > LAB_T ? pow(t, 1.0 / 3.0) : 7.787 * t + 16.0 / 116.0;
}

// BGR (0..1, OpenCV channel order) to L (0..100), a, b.
vec3 bgr_to_lab(vec3 bgr) {
    float r = srgb_to_linear(clamp(bgr.z, 0.0, 1.0));
    float g = srgb_to_linear(clamp(bgr.y, 0.0, 1.0));
    float b = srgb_to_linear(clamp(bgr.x, 0.0, 1.0));
    float x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / D65.x;
    float y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
    float z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / D65.z;
    float fx = lab_f(x);
    float fy = lab_f(y);
    float fz = lab_f(z);
    float l = y > LAB_T ? 116.0 * fy - 16.0 : LAB_K * y;
    return vec3(l, 500.0 * (fx - fy), 200.0 * (fy - fz));
}

// L, a, b to BGR (0..1, OpenCV channel order), clipped to the sRGB gamut like OpenCV.
vec3 lab_to_bgr(vec3 lab) {
    float y;
    float fy;
    if (lab.x <= LAB_T * LAB_K) {
        y = lab.x / LAB_K;
        fy = 7.787 * y + 16.0 / 116.0;
    } else {
        fy = (lab.x + 16.0) / 116.0;
        y = fy * fy * fy;
    }
    float fx = lab.y / 500.0 + fy;
    float fz = fy - lab.z / 200.0;
    float x = fx <= LAB_F_THRESH ? (fx - 16.0 / 116.0) / 7.787 : fx * fx * fx;
    float z = fz <= LAB_F_THRESH ? (fz - 16.0 / 116.0) / 7.787 : fz * fz * fz;
    x *= D65.x;
    z *= D65.z;
    float r = 3.240479 * x - 1.53715 * y - 0.498535 * z;
    float g = -0.969256 * x + 1.875991 * y + 0.041556 * z;
    float b = 0.055648 * x - 0.204043 * y + 1.057311 * z;
    return vec3(linear_to_srgb(clamp(b, 0.0, 1.0)), linear_to_srgb(clamp(g, 0.0, 1.0)),
                linear_to_srgb(clamp(r, 0.0, 1.0)));
}
