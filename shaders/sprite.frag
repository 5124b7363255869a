// Sticker / avatar compositing with premultiplied alpha, the formula of
// arengine.render.sprites.blend_sprite. The blend unit does out = src + dst * (1 - src.a)
// (glBlendFunc(ONE, ONE_MINUS_SRC_ALPHA)); this pass fetches the sprite texel that lands on
// each pixel (no filtering: a sprite at integer pixels is copied exactly) and applies the
// opacity with the reference's integer rounding, src' = (src * o + 128) >> 8.
uniform sampler2D u_sprite;
uniform ivec2 u_origin;  // sprite's top-left corner in canvas pixels
uniform int u_opacity;   // round(opacity * 256); 256 leaves the sprite unchanged

out vec4 frag;

void main() {
    vec4 s = texelFetch(u_sprite, ivec2(gl_FragCoord.xy) - u_origin, 0);
    if (u_opacity < 256) {
        vec4 q = floor(s * 255.0 + 0.5);  // exact 0..255 levels
        s = floor((q * float(u_opacity) + 128.0) / 256.0) / 255.0;
    }
    frag = s;
}
