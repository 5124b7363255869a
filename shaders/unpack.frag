// A region of the frame arrives as its raw BGR bytes in an RGBA8 texture ("packed": byte i
// of the region is component i % 4 of texel i / 4, rows of u_pack_width texels).
// Uploading bytes as RGBA8 is the one format every driver copies without converting, so
// the upload costs a memcpy. This pass spreads them into the canvas, one pixel per
// fragment, drawn over the region only.
uniform sampler2D u_packed;
uniform int u_width;       // region width in pixels
uniform int u_pack_width;  // packed texture width in texels
uniform ivec2 u_origin;    // region's top-left corner in canvas pixels

out vec4 frag;

float byte_at(int index) {
    int texel = index >> 2;
    vec4 t = texelFetch(u_packed, ivec2(texel % u_pack_width, texel / u_pack_width), 0);
    return t[index & 3];
}

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy) - u_origin;
    int base = (p.y * u_width + p.x) * 3;
    frag = vec4(byte_at(base), byte_at(base + 1), byte_at(base + 2), 1.0);
}
