// The inverse of unpack.frag for the readback: gathers the canvas's B, G, R bytes into an
// RGBA8 texture laid out exactly as the BGR frame in memory, so glReadPixels returns the
// frame's bytes with no conversion and no padding.
uniform sampler2D u_canvas;
uniform int u_width;       // frame width in pixels
uniform int u_pixels;      // frame width * height
uniform int u_pack_width;  // packed texture width in texels

out vec4 frag;

float byte_at(int index) {
    int pixel = index / 3;
    if (pixel >= u_pixels) {
        return 0.0;  // padding after the last pixel
    }
    vec4 c = texelFetch(u_canvas, ivec2(pixel % u_width, pixel / u_width), 0);
    return c[index - pixel * 3];
}

void main() {
    ivec2 t = ivec2(gl_FragCoord.xy);
    int base = (t.y * u_pack_width + t.x) * 4;
    frag = vec4(byte_at(base), byte_at(base + 1), byte_at(base + 2), byte_at(base + 3));
}
