// The inverse of unpack.frag for the readback: gathers the B, G, R bytes of a canvas
// region into an RGBA8 texture laid out exactly as that region of a BGR frame in memory,
// so glReadPixels returns its bytes with no conversion and no padding.
uniform sampler2D u_canvas;
uniform int u_width;       // region width in pixels
uniform int u_pixels;      // region width * height
uniform int u_pack_width;  // packed texture width in texels
uniform ivec2 u_origin;    // region's top-left corner in canvas pixels

out vec4 frag;

float byte_at(int index) {
    int pixel = index / 3;
    if (pixel >= u_pixels) {
        return 0.0;  // padding after the last pixel
    }
    vec4 c = texelFetch(u_canvas, u_origin + ivec2(pixel % u_width, pixel / u_width), 0);
    return c[index - pixel * 3];
}

void main() {
    ivec2 t = ivec2(gl_FragCoord.xy);
    int base = (t.y * u_pack_width + t.x) * 4;
    frag = vec4(byte_at(base), byte_at(base + 1), byte_at(base + 2), byte_at(base + 3));
}
