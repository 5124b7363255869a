// Lipstick: the per-pixel formula of arengine.effects.lipstick.composite_lips, every finish
// at once (a finish is a set of weights: detail, sheer, gloss, shimmer, metallic), with the
// gloss highlight from the blurred lightness and the shimmer from sparkle noise that the
// effect samples in lip coordinates (so it stays fixed to the lips from frame to frame).
#include "colour.glsl"

uniform sampler2D u_src;     // the canvas under the lip box (RGB8 holding B, G, R)
uniform sampler2D u_fields;  // RGBA32F: mask 0..1, blurred L, sparkle 0..1, edge distance
uniform sampler2D u_radial;  // R32F: elliptic radius (read only when u_ombre > 0)
uniform ivec2 u_origin;      // lip box top-left in canvas pixels

uniform vec3 u_colour;       // shade, CIELAB
uniform float u_opacity;
uniform float u_detail;
uniform float u_sheer;
uniform float u_gloss;
uniform float u_shimmer;
uniform float u_metallic;
uniform vec3 u_liner_colour;
uniform float u_liner;
uniform float u_liner_width;
uniform vec3 u_ombre_colour;
uniform float u_ombre;
uniform float u_ombre_ratio;
uniform float u_l_ref;
uniform float u_l_std;

out vec4 frag;

// The reference's smoothstep: defined (not undefined as GLSL's) when e0 >= e1.
float step3(float e0, float e1, float x) {
    float t = clamp((x - e0) * (1.0 / max(e1 - e0, 1e-6)), 0.0, 1.0);
    return t * t * (3.0 - 2.0 * t);
}

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy) - u_origin;
    vec4 f = texelFetch(u_fields, p, 0);
    float m = f.x;
    if (m <= 0.0) {
        discard;  // not lip: the canvas keeps its pixel exactly
    }
    vec3 src = texelFetch(u_src, p, 0).rgb;  // B, G, R in 0..1
    float L = bgr_to_lab(src).x;
    float lb = f.y;

    vec3 c = u_colour;
    if (u_ombre > 0.0) {
        float r = texelFetch(u_radial, p, 0).x;
        float wo = u_ombre * (1.0 - step3(u_ombre_ratio - 0.15, u_ombre_ratio + 0.15, r));
        c += wo * (u_ombre_colour - c);
    }
    if (u_liner > 0.0) {
        float wl = u_liner * (1.0 - step3(0.5 * u_liner_width, u_liner_width, f.w));
        c += wl * (u_liner_colour - c);
    }
    float spec = clamp((lb - u_l_ref - 0.5 * u_l_std) * (1.0 / (1.5 * u_l_std + 1.0)), 0.0, 1.0);
    spec *= spec;
    float broad = lb - u_l_ref;  // the broad shading, softened; creases (L - lb) kept
    float tl = c.x + u_detail * (L - lb + 0.6 * broad);
    tl += 0.8 * u_metallic * broad;
    tl += 0.5 * u_sheer * (L - tl);
    // Pigment in shadow loses chroma with lightness (the shade's own L is full chroma).
    float ab_gain = clamp(0.4 + tl * (0.6 / max(u_colour.x, 1.0)), 0.0, 1.0);
    ab_gain += 0.25 * u_metallic * spec;  // tinted metal highlight
    float g = u_gloss * spec;
    tl += 0.55 * g * (100.0 - tl);
    ab_gain *= 1.0 - 0.5 * g;
    float s = u_shimmer * f.z;
    tl += 0.6 * s * (100.0 - tl);
    ab_gain *= 1.0 - 0.4 * s;

    vec3 tgt = clamp(lab_to_bgr(vec3(tl, c.y * ab_gain, c.z * ab_gain)), 0.0, 1.0);
    float a = m * u_opacity * (1.0 - 0.45 * u_sheer);
    // The reference rounds 255 * mix(src, tgt, a) half up; unorm conversion rounds to
    // nearest, which is the same for the non-negative values here.
    frag = vec4(mix(src, tgt, a), 1.0);
}
