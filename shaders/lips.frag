// Lipstick: the per-pixel formula of arengine.render.lips.composite_lips, every finish at
// once (a finish is a set of weights: detail, sheer, blot, gloss, sheen, shimmer, metallic).
// The shade's colours arrive already adapted to the light measured on the face; the lip
// surface normal, the highlight visibility and the glitter flakes (each with its own tilt)
// arrive as per-pixel fields that the effect computes in lip coordinates, so everything
// stays on the lips from frame to frame. The lobe constants arrive as uniforms from the
// same Python constants the CPU reference uses.
#include "colour.glsl"

uniform sampler2D u_src;      // the canvas under the lip box (RGB8 holding B, G, R)
uniform sampler2D u_fields0;  // RGBA32F: mask 0..1, blurred L, normal x, normal y
uniform sampler2D u_fields1;  // RGBA32F: normal z, highlight visibility, edge, ombre coord
uniform sampler2D u_glint;    // RGBA32F: flake coverage, flake tilt x, y (u_shimmer > 0)
uniform ivec2 u_origin;       // lip box top-left in canvas pixels

uniform vec3 u_colour;        // shade, CIELAB, as worn in the measured light
uniform float u_opacity;
uniform float u_detail;
uniform float u_sheer;
uniform float u_blot;
uniform float u_gloss;
uniform float u_sheen;
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
uniform vec3 u_specular;      // the highlight colour: the light itself, B, G, R 0..1
uniform vec3 u_half;          // the key light's half vector (x is 0)

uniform float u_sheen_lift;   // SHEEN_LIFT
uniform float u_sheen_power;  // SHEEN_SHININESS
uniform vec2 u_gloss_cos;     // GLOSS_COS
uniform float u_gloss_halo;   // GLOSS_HALO
uniform float u_gloss_coat;   // GLOSS_COAT
uniform vec2 u_metal_cos;     // METAL_COS
uniform float u_metal_dim;    // METAL_DIM
uniform float u_glint_tilt;   // GLINT_TILT
uniform vec2 u_glint_cos;     // GLINT_COS
uniform float u_chroma_max;   // CHROMA_MAX
uniform float u_white_rolloff;  // WHITE_ROLLOFF

out vec4 frag;

// The reference's smoothstep: defined (not undefined as GLSL's) when e0 >= e1.
float step3(float e0, float e1, float x) {
    float t = clamp((x - e0) * (1.0 / max(e1 - e0, 1e-6)), 0.0, 1.0);
    return t * t * (3.0 - 2.0 * t);
}

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy) - u_origin;
    vec4 f0 = texelFetch(u_fields0, p, 0);
    float m = f0.x;
    if (m <= 0.0) {
        discard;  // not lip: the canvas keeps its pixel exactly
    }
    vec4 f1 = texelFetch(u_fields1, p, 0);
    vec3 src = texelFetch(u_src, p, 0).rgb;  // B, G, R in 0..1
    float L = bgr_to_lab(src).x;
    float lb = f0.y;
    vec3 n = vec3(f0.z, f0.w, f1.x);

    vec3 c = u_colour;
    if (u_ombre > 0.0) {
        float wo = u_ombre * (1.0 - step3(u_ombre_ratio - 0.1, u_ombre_ratio + 0.35, f1.w));
        c += wo * (u_ombre_colour - c);
    }
    if (u_liner > 0.0) {  // a feathered band along the outer contour
        float wl = 0.75 * u_liner * (1.0 - step3(0.25 * u_liner_width, 1.8 * u_liner_width,
                                                 f1.z));
        c += wl * (u_liner_colour - c);
    }
    float d = L - u_l_ref;  // the lip's own shading and creases, at full contrast
    if (u_blot > 0.0) {
        d -= u_blot * max(d - u_l_std, 0.0);  // ... less its own shine under a matte
    }
    float tl = d * u_detail + c.x;
    if (u_sheer > 0.0) {
        tl += 0.5 * u_sheer * (L - tl);
    }
    // Chroma follows the shading (less in shadow, a little more in the light), and falls
    // toward white near L* 100.
    float k = clamp(tl * (0.6 / max(c.x, 1.0)) + 0.4, 0.0, u_chroma_max);
    k = min(k, (100.0 - tl) * (u_white_rolloff / max(100.0 - c.x, 1.0)));  // toward white
    float coat = 0.0;
    if (u_gloss > 0.0 || u_sheen > 0.0 || u_metallic > 0.0 || u_shimmer > 0.0) {
        float nh = max(n.y * u_half.y + n.z * u_half.z, 0.0);
        float sp = f1.y;
        float tex = clamp((L - lb) * (1.0 / (u_l_std + 1.0)) + 1.0, 0.0, 2.0);
        if (u_sheen > 0.0) {  // satin: a soft, broad sheen
            tl += u_sheen_lift * u_sheen * sp * pow(nh, u_sheen_power);
        }
        if (u_metallic > 0.0) {  // a tinted mirror: the shade's own hue in the highlight
            float met = u_metallic * sp * step3(u_metal_cos.x, u_metal_cos.y, nh)
                * (0.5 + 0.5 * tex);
            tl -= u_metal_dim * u_metallic * sp * (1.0 - met) * tl;
            tl += 0.7 * met * (100.0 - tl);
            k *= 1.0 + 0.4 * met;
        }
        if (u_shimmer > 0.0) {  // each flake lit by its own orientation
            vec4 g = texelFetch(u_glint, p, 0);
            float gx = n.x + u_glint_tilt * g.y;
            float gy = n.y + u_glint_tilt * g.z;
            float gd = max((gy * u_half.y + n.z * u_half.z)
                           / sqrt(gx * gx + gy * gy + n.z * n.z + 1e-6), 0.0);
            float gl = u_shimmer * g.x * step3(0.5, 0.9, m)
                * step3(u_glint_cos.x, u_glint_cos.y, gd);
            tl += 0.7 * gl * (100.0 - tl);
            k *= 1.0 - 0.15 * gl;
        }
        if (u_gloss > 0.0) {  // a clear wet coat mirroring the key light
            float own = clamp((lb - u_l_ref - 0.5 * u_l_std)
                              * (1.0 / (1.5 * u_l_std + 1.0)), 0.0, 1.0);
            float wet = (0.6 * step3(u_gloss_cos.x, u_gloss_cos.y, nh)
                         + 0.4 * pow(nh, u_gloss_halo)) * (0.4 + 0.6 * tex) + 0.35 * own * own;
            coat = u_gloss_coat * u_gloss * sp * min(wet, 1.0);
        }
    }

    vec3 tgt = clamp(lab_to_bgr(vec3(tl, c.y * k, c.z * k)), 0.0, 1.0);
    float a = m * u_opacity * (1.0 - 0.45 * u_sheer);
    // The reference rounds 255 * mix(mix(src, tgt, a), specular, m * coat) half up; unorm
    // conversion rounds to nearest, which is the same for the non-negative values here.
    vec3 o = mix(src, tgt, a);
    o = mix(o, u_specular, m * coat);
    frag = vec4(o, 1.0);
}
