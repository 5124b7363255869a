// Copy a region of the canvas into a scratch texture, so a pass that needs the pixels
// underneath (the lip colour) can read them while it writes the canvas.
uniform sampler2D u_src;
uniform ivec2 u_offset;  // source pixel = target pixel + offset

out vec4 frag;

void main() {
    frag = texelFetch(u_src, ivec2(gl_FragCoord.xy) + u_offset, 0);
}
