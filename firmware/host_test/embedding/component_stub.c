/* the component library needs one object of its own on the host */
int espdl_stream_component_stub;
